"""The template variables of notices: cards about errors already carded (escalating, ...).

An escalation names each error by the occurrence the pipeline kept of it (redacted, as every
card is), or, when that was forgotten, by its fingerprint (redacted too: a custom one may hold
request data). Recovered cards and the summary may be sent by a replica that never saw the
error: they name it as the fleet remembered it (`memory.remembered_name`). Lines are bounded, so a
notice card fits Lark's 20 KiB by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .._records import ERROR_LEVELS, DailySummary, ErrorEvent, EscalationNotice, RecoveryNotice
from . import spoken
from .excerpt import printable
from .markup import LarkText, mention_markup
from .redact import Redactor
from .view import (
    NO_MENTIONS,
    SEVERITY_COLOURS,
    SEVERITY_ICONS,
    CardSettings,
    build_view,
    cut,
    http_subject,
)

# Errors a notice lists (the rest are counted); fewer when the card would not fit otherwise.
NOTICE_LINES = 10
SUBJECT_CHARACTERS = 300
NAME_CHARACTERS_REDACTED = 1000
EXCEPTION_CHARACTERS = 300


@dataclass(frozen=True, slots=True)
class NamedError:
    """How a notice shows one error: what failed, its exception in a line, and how bad it is."""

    subject: str
    exception: str
    severity: str
    fingerprint: str


def shown_name(name: str, redactor: Redactor) -> str:
    """A remembered name or a fingerprint, as a card shows it: redacted (a custom fingerprint may
    hold request data), printable, cut short. Names are cut at capture already (fingerprints to
    1,000 characters); this bound keeps the card's cost bounded whatever it is given."""
    return cut(printable(redactor.text(name[:NAME_CHARACTERS_REDACTED])), SUBJECT_CHARACTERS)[0]


def named_error(
    fingerprint: str, example: ErrorEvent | None, redactor: Redactor, severity: str
) -> NamedError:
    """An error as an escalation names it: by its `example` if there is one, else by its fingerprint."""
    shown_fingerprint = shown_name(fingerprint, redactor)
    if example is None:
        return NamedError(shown_fingerprint, "", severity, shown_fingerprint)
    view = build_view(example, fingerprint, None, redactor)
    subject = view.subject or http_subject(example, example.route or view.path)
    exception = ""
    if view.exception is not None:
        exception = cut(f"{view.exception.type}: {view.exception.message}", EXCEPTION_CHARACTERS)[0]
    return NamedError(cut(subject, SUBJECT_CHARACTERS)[0], exception, example.severity, shown_fingerprint)


def _header(card: CardSettings, title: str, severity: str, *, mentions: LarkText) -> dict[str, Any]:
    """What every notice card has: title, colour and icon, service, environment, keyword, mentions."""
    return {
        "title": title,
        "severity": severity,
        "color": SEVERITY_COLOURS[severity],
        "icon": SEVERITY_ICONS[severity],
        "service": card.service,
        "environment": card.environment,
        "keyword": card.keyword,
        "mentions": mentions,
    }


def _escalation_mentions(notice: EscalationNotice, severity: str, card: CardSettings) -> LarkText:
    """A route's people, on the card that says an error reached its `mention_after`; otherwise the
    destination's own mentions, for errors (as on their first cards)."""
    if notice.mentions:
        return mention_markup(notice.mentions)
    return card.mentions if severity in ERROR_LEVELS else NO_MENTIONS


def escalation_variables(
    notice: EscalationNotice, redactor: Redactor, card: CardSettings, listed: int | None = None
) -> dict[str, Any]:
    """An escalation card: each error's count inside its window, how fast, since when."""
    lines = []
    # Of every error escalating, listed or not: a server error among them makes the card red.
    severities = {escalation.example.severity for escalation in notice.escalations if escalation.example}
    for escalation in notice.escalations[: listed or NOTICE_LINES]:
        name = named_error(escalation.fingerprint, escalation.example, redactor, "warning")
        elapsed = escalation.counted_at - escalation.window_started_at
        lines.append(
            {
                "icon": SEVERITY_ICONS[name.severity],
                "subject": name.subject,
                "exception": name.exception,
                "fingerprint": name.fingerprint,
                "count": spoken.count(escalation.count),
                "threshold": spoken.count(escalation.threshold),
                "elapsed": spoken.duration(elapsed),
                "rate": spoken.rate(escalation.count, elapsed),
                "since": spoken.clock(escalation.window_started_at),
            }
        )
    severity = next((level for level in SEVERITY_ICONS if level in severities), "warning")
    if len(notice.escalations) == 1:
        title = f"{lines[0]['subject']}: now {lines[0]['count']} times in {lines[0]['elapsed']}"
    else:
        title = f"{len(notice.escalations)} errors escalating"
    return {
        **_header(card, title, severity, mentions=_escalation_mentions(notice, severity, card)),
        "lines": lines,
        "more": len(notice.escalations) - len(lines),
        "thresholds": " · ".join(spoken.count(threshold) for threshold in notice.thresholds),
    }


def recovered_variables(
    notice: RecoveryNotice, redactor: Redactor, card: CardSettings, listed: int | None = None
) -> dict[str, Any]:
    """A recovered card: each error's quiet spell so far, and its episode: how often, how long."""
    lines = []
    for recovery in notice.recoveries[: listed or NOTICE_LINES]:
        name = shown_name(recovery.name, redactor)
        lines.append(
            {
                "icon": SEVERITY_ICONS.get(recovery.severity, SEVERITY_ICONS["error"]),
                "subject": name,
                "quiet_for": spoken.duration(notice.checked_at - recovery.last_seen_at),
                "times": spoken.times(recovery.count),
                "lasted": spoken.duration(recovery.last_seen_at - recovery.started_at),
                "started": spoken.moment(recovery.started_at),
                "last_seen": spoken.clock(recovery.last_seen_at),
            }
        )
    if len(notice.recoveries) == 1:
        title = f"{lines[0]['subject']}: quiet for {lines[0]['quiet_for']}"
    else:
        title = f"{len(notice.recoveries)} errors quiet again"
    return {
        **_header(card, title, "resolved", mentions=NO_MENTIONS),
        "lines": lines,
        "more": len(notice.recoveries) - len(lines),
    }


def summary_variables(
    summary: DailySummary, redactor: Redactor, card: CardSettings, listed: int | None = None
) -> dict[str, Any]:
    """The daily summary: the period, its totals, the most frequent errors and the new ones."""
    lines = []
    for line in summary.lines[:listed]:  # all it holds (at most 15), unless told fewer
        lines.append(
            {
                "icon": SEVERITY_ICONS.get(line.severity, SEVERITY_ICONS["error"]),
                "subject": shown_name(line.name, redactor),
                "count": spoken.count(line.count),
                "new": line.new,
                "firing": line.firing,
            }
        )
    zone = ZoneInfo(summary.timezone)

    def local(timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M")

    firing = sum(1 for line in summary.lines if line.firing)
    return {
        **_header(card, f"Daily summary: {spoken.errors(summary.total)}", "info", mentions=NO_MENTIONS),
        "period": f"{local(summary.started_at)} to {local(summary.ended_at)} ({summary.timezone})",
        "total": spoken.count(summary.total),
        "kinds": spoken.count(summary.kinds),
        "new_kinds": spoken.count(summary.new_kinds),
        "firing": firing,
        "lines": lines,
        "more_kinds": max(summary.kinds - len(lines), 0),
    }
