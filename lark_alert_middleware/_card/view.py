"""The template's variables for one alert: redacted, printable, cut to the sizes asked for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from .._config import AlertSettings
from .._lark.urls import safe_url
from .._records import (
    CapturedBody,
    Destination,
    DigestSummary,
    ErrorEvent,
    ExceptionText,
    History,
    Repeats,
    exception_name,
)
from . import spoken
from .excerpt import BodyExcerpt, excerpt_body, printable
from .markup import LarkText, mention_markup
from .redact import Redactor

NO_MENTIONS = LarkText("")


@dataclass(frozen=True, slots=True)
class CardSettings:
    """What the card shows that does not come from the request."""

    service: str
    environment: str
    logs_url: str | None = None
    keyword: str | None = None
    mentions: LarkText = NO_MENTIONS
    trace_url: str | None = None
    memory_days: int = 14


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much of each long part is shown, in characters; the fitter shrinks these."""

    body: int = 1500
    traceback: int = 2500
    message: int = 500
    header_count: int = 25
    value: int = 300


FULL_SIZES = Sizes()


def card_settings(settings: AlertSettings, destination: Destination, service: str) -> CardSettings:
    """What the configuration puts on every card of `service` sent to `destination`."""
    return CardSettings(
        service,
        settings.environment,
        settings.seq_url,
        destination.keyword,
        mention_markup(destination.mentions),
        settings.trace_url,
        settings.memory_days,
    )


@dataclass(frozen=True, slots=True)
class ExceptionView:
    type: str
    message: str
    traceback: str


# CPU seconds the view of one card may take (redaction above all); the parts not built by
# then are left out, and the card says so. Redaction is linear, so only a hostile scrub hook
# or a pathological input reaches it.
CARD_CPU_BUDGET_SECONDS = 0.5
NOT_SHOWN = "[not shown]"


@dataclass(frozen=True, slots=True)
class PartFailure:
    """A part of the card that could not be shown: its building raised `error`, or (None) time ran out."""

    part: str
    error: BaseException | None

    def describe(self) -> str:
        cause = "the card's time budget ran out" if self.error is None else type(self.error).__name__
        return f"{self.part} ({cause})"


@dataclass(frozen=True, slots=True)
class AlertView:
    """Everything about one alert, before sizes are applied; built once, cut many times."""

    event: ErrorEvent
    fingerprint: str
    repeats: Repeats | None
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    request_body: BodyExcerpt
    response_body: BodyExcerpt
    exception: ExceptionView | None
    failures: tuple[PartFailure, ...] = ()
    subject: str = ""  # what failed, for sources other than a failing response; "": the HTTP subject
    message: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    history: History | None = None


T = TypeVar("T")


class _Parts:
    """Builds each part of a view on its own: one that raises, or finds the budget spent, is left out."""

    def __init__(self, budget_seconds: float) -> None:
        self.failures: list[PartFailure] = []
        self._deadline = time.thread_time() + budget_seconds

    def build(self, part: str, make: Callable[[], T], fallback: T) -> T:
        if time.thread_time() > self._deadline:
            self.failures.append(PartFailure(part, None))
            return fallback
        try:
            return make()
        except Exception as error:
            self.failures.append(PartFailure(part, error))
            return fallback


def build_view(
    event: ErrorEvent,
    fingerprint: str,
    repeats: Repeats | None,
    redactor: Redactor,
    *,
    budget_seconds: float = CARD_CPU_BUDGET_SECONDS,
    history: History | None = None,
) -> AlertView:
    """The redacted view of an event. Never raises: what cannot be shown is left out and listed."""
    parts = _Parts(budget_seconds)
    # What identifies the error first: when the budget runs out, the bodies go before the exception.
    path = parts.build("path", lambda: printable(redactor.path(event.path, event.route)), NOT_SHOWN)
    exception = parts.build("exception", lambda: _exception_view(event, redactor), _exception_type(event))
    return AlertView(
        event=event,
        # A custom fingerprint may hold request data.
        fingerprint=parts.build("fingerprint", lambda: printable(redactor.text(fingerprint)), NOT_SHOWN),
        repeats=repeats,
        path=path,
        query=parts.build(
            "query", lambda: _pairs(parse_qsl(event.query_string, keep_blank_values=True), redactor), []
        ),
        headers=parts.build("request headers", lambda: _pairs(event.headers, redactor), []),
        request_body=parts.build(
            "request body",
            lambda: excerpt_body(event.request_body, redactor),
            _unreadable(event.request_body),
        ),
        response_body=parts.build(
            "response body",
            lambda: excerpt_body(event.response_body, redactor),
            _unreadable(event.response_body),
        ),
        exception=exception,
        # Parts only some sources have: built (and possibly left out) only when there.
        subject=parts.build("subject", lambda: _subject(event, redactor), NOT_SHOWN) if event.subject else "",
        message=parts.build("message", lambda: printable(redactor.excerpt(event.message or "")), NOT_SHOWN)
        if event.message
        else "",
        details=parts.build("details", lambda: _pairs(event.details, redactor), []) if event.details else [],
        labels=parts.build("labels", lambda: _pairs(event.labels, redactor), []) if event.labels else [],
        links=parts.build("links", lambda: _links(event.links, redactor), []) if event.links else [],
        failures=tuple(parts.failures),
        history=history,
    )


def _subject(event: ErrorEvent, redactor: Redactor) -> str:
    return "" if event.subject is None else printable(redactor.text(event.subject))


def _links(links: Iterable[tuple[str, str]], redactor: Redactor) -> list[tuple[str, str]]:
    """Buttons: http(s) links only, with whatever may be a credential in them masked."""
    return [
        (printable(redactor.text(label)), printable(safe_url(url)))
        for label, url in links
        if urlsplit(url).scheme in ("http", "https")
    ]


def _pairs(items: Iterable[tuple[str, str]], redactor: Redactor) -> list[tuple[str, str]]:
    return [(printable(name), printable(value)) for name, value in redactor.pairs(items)]


def _unreadable(body: CapturedBody) -> BodyExcerpt:
    return BodyExcerpt("unreadable", "", body.size, None, "could not be shown")


def _exception_type(event: ErrorEvent) -> ExceptionView | None:
    """All that is shown of an exception whose text could not be: the name of its type."""
    if event.exception_text is not None:
        return ExceptionView(event.exception_text.type_name, NOT_SHOWN, "")
    if event.exception is not None:
        return ExceptionView(exception_name(event.exception), NOT_SHOWN, "")
    return None


def _exception_view(event: ErrorEvent, redactor: Redactor) -> ExceptionView | None:
    text = event.exception_text
    if text is None:
        if event.exception is None:
            return None
        text = ExceptionText.of(event.exception)
    return ExceptionView(
        printable(text.type_name),
        printable(redactor.excerpt(text.message)),
        printable(redactor.excerpt(text.traceback, keep_end=True)),
    )


def cut(text: str, limit: int, *, keep_end: bool = False) -> tuple[str, int]:
    """`text` shortened to `limit` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    if limit <= 0:
        return "", len(text)
    if keep_end:
        return "…" + text[len(text) - limit + 1 :], len(text) - limit + 1
    return text[: limit - 1] + "…", len(text) - limit + 1


def template_variables(view: AlertView, card: CardSettings, sizes: Sizes) -> tuple[dict[str, Any], int]:
    """The variables a card template sees, and how many characters `sizes` cut."""
    event = view.event
    cut_total = 0

    def shorten(text: str, limit: int, keep_end: bool = False) -> str:
        nonlocal cut_total
        shown, removed = cut(text, limit, keep_end=keep_end)
        cut_total += removed
        return shown

    def body(excerpt: BodyExcerpt) -> BodyExcerpt:
        return replace(excerpt, text=shorten(excerpt.text, sizes.body))

    headers = view.headers[: sizes.header_count]
    cut_total += sum(len(k) + len(v) for k, v in view.headers[sizes.header_count :])
    exception = None
    if view.exception is not None:
        exception = ExceptionView(
            view.exception.type,
            shorten(view.exception.message, sizes.message),
            shorten(view.exception.traceback, sizes.traceback, keep_end=True),
        )
    is_error = event.is_error
    severity = event.severity
    route = event.route or view.path
    occurred = datetime.fromtimestamp(event.timestamp, tz=timezone.utc)
    variables: dict[str, Any] = {
        "title": shorten(view.subject, sizes.value * 2) or http_subject(event, shorten(route, sizes.value)),
        "severity": severity,
        "color": SEVERITY_COLOURS[severity],
        "icon": SEVERITY_ICONS[severity],
        "source": event.source,
        "source_name": SOURCE_NAMES.get(event.source, event.source),
        "service": card.service,
        "environment": card.environment,
        "method": event.method,
        "sent_method": printable(event.sent_method) if event.sent_method else None,
        "path": shorten(view.path, sizes.value),
        "route": event.route,
        "status_code": event.status_code,
        "status_phrase": _phrase(event.status_code),
        "occurred_at": LarkText(occurred.strftime("%Y-%m-%d %H:%M:%S UTC")),
        "duration_ms": f"{event.duration_seconds * 1000:.1f}",
        "request_id": shorten(printable(event.request_id), 100),
        "client": event.client or "",
        "fingerprint": view.fingerprint,
        "query": [(k, shorten(v, sizes.value)) for k, v in view.query[: sizes.header_count]],
        "headers": [(k, shorten(v, sizes.value)) for k, v in headers],
        "request_body": body(view.request_body),
        "response_body": body(view.response_body),
        "exception": exception,
        "message": shorten(view.message, sizes.message * 2),
        "logger": printable(event.logger_name or ""),
        "details": [(shorten(k, 60), shorten(v, sizes.value)) for k, v in view.details[: sizes.header_count]],
        "labels": [(shorten(k, 60), shorten(v, sizes.value)) for k, v in view.labels[: sizes.header_count]],
        "links": [(shorten(k, 40), v) for k, v in view.links[:MAX_LINKS]],
        "logs_url": _link(card.logs_url, "{request_id}", event.request_id) if event.request_id else None,
        "trace_id": event.trace_id,
        "trace_url": _link(card.trace_url, "{trace_id}", event.trace_id) if event.trace_id else None,
        "repeats": _repeats(view.repeats),
        # A resolved card (a relayed alert's) is about the end of an error, not a new one.
        "novelty": view.history.novelty if view.history is not None and severity != "resolved" else None,
        "history": _history(view.history, event.timestamp, card.memory_days),
        "mentions": card.mentions if is_error else NO_MENTIONS,
        "keyword": card.keyword,
        "cut_note": "",
    }
    cut_total += sum(len(k) + len(v) for k, v in view.details[sizes.header_count :])
    cut_total += sum(len(k) + len(v) for k, v in view.labels[sizes.header_count :])
    return variables, cut_total


DIGEST_LINES = 15
# Shown first in the title, so that a phone's notification says how bad it is.
SEVERITY_ICONS = {"critical": "🔴", "error": "🔴", "warning": "🟠", "info": "🔵", "resolved": "🟢"}
SEVERITY_COLOURS = {
    "critical": "red",
    "error": "red",
    "warning": "orange",
    "info": "blue",
    "resolved": "green",
}
# How a card names where its error was seen.
SOURCE_NAMES = {
    "http": "HTTP request",
    "websocket": "websocket",
    "background": "after the response",
    "log": "log record",
    "capture": "reported by the code",
    "startup": "start-up",
    "relay": "relayed alert",
}
# Buttons a card shows besides its logs and trace links.
MAX_LINKS = 4


def http_subject(event: ErrorEvent, route: str) -> str:
    """What failed, for a failing HTTP response: `500 POST /orders/{order_id}`."""
    return f"{event.status_code} {event.method} {route}"


def redacted_digest(summary: DigestSummary, redactor: Redactor) -> DigestSummary:
    """The digest with the lines it shows redacted, as every card is; the others are only counted."""
    shown = tuple(
        replace(
            line,
            fingerprint=redactor.text(line.fingerprint),
            example_path=redactor.path(line.example_path, line.route),
        )
        for line in summary.lines[:DIGEST_LINES]
    )
    return replace(summary, lines=shown + summary.lines[DIGEST_LINES:])


def digest_variables(summary: DigestSummary, card: CardSettings) -> dict[str, Any]:
    """The variables of the digest card: the most frequent kinds first, the rest as a count."""
    shown = summary.lines[:DIGEST_LINES]
    hidden = summary.lines[DIGEST_LINES:]
    started = datetime.fromtimestamp(summary.started_at, tz=timezone.utc).strftime("%H:%M:%S")
    ended = datetime.fromtimestamp(summary.ended_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
    return {
        "title": f"{summary.total} more errors since {started} UTC",
        "color": "red" if summary.has_errors else "orange",
        "icon": SEVERITY_ICONS["error" if summary.has_errors else "warning"],
        "mentions": card.mentions if summary.has_errors else NO_MENTIONS,
        "service": card.service,
        "environment": card.environment,
        "keyword": card.keyword,
        "period": LarkText(f"{started} to {ended}"),
        "total": summary.total,
        "lines": [
            {
                "fingerprint": printable(line.fingerprint)[:200],
                "count": line.count,
                "status_code": line.status_code,
                "example_path": printable(line.example_path)[:120],
                "is_error": line.is_error,
            }
            for line in shown
        ],
        # Past the digest's bound on kinds, errors are counted but their kinds are not.
        "more_kinds": len(hidden) + (1 if summary.uncounted_kinds_total else 0),
        "more_kinds_at_least": summary.uncounted_kinds_total > 0,
        "more_errors": sum(line.count for line in hidden) + summary.uncounted_kinds_total,
    }


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _link(template: str | None, placeholder: str, value: str | None) -> str | None:
    """A configured URL with `placeholder` filled in (URL-encoded)."""
    if template is None:
        return None
    return template.replace(placeholder, quote(value or "", safe=""))


def _history(history: History | None, now: float, memory_days: int) -> dict[str, Any] | None:
    """What the card says of the error's past: when last and first seen, how often, how long quiet."""
    if history is None:
        return None
    last_seen, first_seen = history.last_seen_at, history.first_seen_at
    return {
        "last_seen": LarkText(spoken.moment(last_seen)) if last_seen is not None else None,
        "first_seen": LarkText(spoken.moment(first_seen)) if first_seen is not None else None,
        "quiet_for": spoken.duration(now - last_seen) if last_seen is not None else None,
        "total": spoken.count(history.total),
        "memory_days": memory_days,
    }


def _repeats(repeats: Repeats | None) -> dict[str, Any] | None:
    if repeats is None or repeats.count <= 0:
        return None
    since = None
    if repeats.since is not None:
        since = LarkText(
            datetime.fromtimestamp(repeats.since, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        )
    return {"count": repeats.count, "since": since}
