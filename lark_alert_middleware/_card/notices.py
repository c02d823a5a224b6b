"""The template variables of notices: cards about errors already carded (escalating, ...).

A notice names each error by the occurrence the pipeline kept of it (redacted, as every card
is), or, when that was forgotten, by its fingerprint (redacted too: a custom one may hold
request data). Lines are bounded, so a notice card fits Lark's 20 KiB by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._records import ErrorEvent, EscalationNotice, RecoveryNotice
from . import spoken
from .excerpt import printable
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

NOTICE_LINES = 10
SUBJECT_CHARACTERS = 300
EXCEPTION_CHARACTERS = 300


@dataclass(frozen=True, slots=True)
class NamedError:
    """How a notice shows one error: what failed, its exception in a line, and how bad it is."""

    subject: str
    exception: str
    severity: str
    fingerprint: str


def named_error(
    fingerprint: str, example: ErrorEvent | None, redactor: Redactor, severity: str
) -> NamedError:
    """An error as a notice names it: by its `example` if there is one, else by its fingerprint."""
    shown_fingerprint = cut(printable(redactor.text(fingerprint)), SUBJECT_CHARACTERS)[0]
    if example is None:
        return NamedError(shown_fingerprint, "", severity, shown_fingerprint)
    view = build_view(example, fingerprint, None, redactor)
    subject = view.subject or http_subject(example, example.route or view.path)
    exception = ""
    if view.exception is not None:
        exception = cut(f"{view.exception.type}: {view.exception.message}", EXCEPTION_CHARACTERS)[0]
    return NamedError(cut(subject, SUBJECT_CHARACTERS)[0], exception, example.severity, shown_fingerprint)


def _header(card: CardSettings, title: str, severity: str, *, mention: bool) -> dict[str, Any]:
    """What every notice card has: title, colour and icon, service, environment, keyword, mentions."""
    return {
        "title": title,
        "severity": severity,
        "color": SEVERITY_COLOURS[severity],
        "icon": SEVERITY_ICONS[severity],
        "service": card.service,
        "environment": card.environment,
        "keyword": card.keyword,
        "mentions": card.mentions if mention else NO_MENTIONS,
    }


def escalation_variables(notice: EscalationNotice, redactor: Redactor, card: CardSettings) -> dict[str, Any]:
    """An escalation card: each error's count inside its window, how fast, since when."""
    lines = []
    severities = set()
    for escalation in notice.escalations[:NOTICE_LINES]:
        name = named_error(escalation.fingerprint, escalation.example, redactor, "warning")
        severities.add(name.severity)
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
        **_header(card, title, severity, mention=severity in ("critical", "error")),
        "lines": lines,
        "more": len(notice.escalations) - len(lines),
        "thresholds": " · ".join(spoken.count(threshold) for threshold in notice.thresholds),
    }


def recovered_variables(notice: RecoveryNotice, redactor: Redactor, card: CardSettings) -> dict[str, Any]:
    """A recovered card: each error's quiet spell so far, and its episode: how often, how long."""
    lines = []
    for recovery in notice.recoveries[:NOTICE_LINES]:
        name = named_error(recovery.fingerprint, recovery.example, redactor, recovery.severity)
        lines.append(
            {
                "icon": SEVERITY_ICONS[name.severity],
                "subject": name.subject,
                "fingerprint": name.fingerprint,
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
        **_header(card, title, "resolved", mention=False),
        "lines": lines,
        "more": len(notice.recoveries) - len(lines),
    }
