"""The template's variables for one alert: redacted, printable, cut to the sizes asked for."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote

from .config import AlertSettings
from .digest import DigestSummary
from .event import ErrorEvent, ExceptionText
from .excerpt import BodyExcerpt, excerpt_body, printable
from .markup import LarkText, mention_markup
from .redact import Redactor


@dataclass(frozen=True, slots=True)
class Repeats:
    """How often the error happened, unreported, since the previous alert for it."""

    count: int
    since: float | None


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


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much of each long part is shown, in characters; the fitter shrinks these."""

    body: int = 1500
    traceback: int = 2500
    message: int = 500
    header_count: int = 25
    value: int = 300


FULL_SIZES = Sizes()


def card_settings(settings: AlertSettings, service: str) -> CardSettings:
    """What the configuration puts on every card of `service`."""
    return CardSettings(
        service,
        settings.environment,
        settings.seq_url,
        settings.keyword,
        mention_markup(settings.mention),
        settings.trace_url,
    )


@dataclass(frozen=True, slots=True)
class ExceptionView:
    type: str
    message: str
    traceback: str


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


def build_view(event: ErrorEvent, fingerprint: str, repeats: Repeats | None, redactor: Redactor) -> AlertView:
    return AlertView(
        event=event,
        fingerprint=printable(redactor.text(fingerprint)),  # a custom fingerprint may hold request data
        repeats=repeats,
        path=printable(redactor.path(event.path, event.route)),
        query=[
            (printable(k), printable(v))
            for k, v in redactor.pairs(parse_qsl(event.query_string, keep_blank_values=True))
        ],
        headers=[(printable(k), printable(v)) for k, v in redactor.pairs(event.headers)],
        request_body=excerpt_body(event.request_body, redactor),
        response_body=excerpt_body(event.response_body, redactor),
        exception=_exception_view(event, redactor),
    )


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
    is_error = event.status_code >= 500 or view.exception is not None
    route = event.route or view.path
    occurred = datetime.fromtimestamp(event.timestamp, tz=timezone.utc)
    variables: dict[str, Any] = {
        "title": f"{event.status_code} {event.method} {shorten(route, sizes.value)}",
        "severity": "error" if is_error else "warning",
        "color": "red" if is_error else "orange",
        "icon": SEVERITY_ICONS[is_error],
        "service": card.service,
        "environment": card.environment,
        "method": event.method,
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
        "logs_url": _link(card.logs_url, "{request_id}", event.request_id),
        "trace_id": event.trace_id,
        "trace_url": _link(card.trace_url, "{trace_id}", event.trace_id) if event.trace_id else None,
        "repeats": _repeats(view.repeats),
        "mentions": card.mentions if is_error else LarkText(""),
        "keyword": card.keyword,
        "cut_note": "",
    }
    return variables, cut_total


DIGEST_LINES = 15
# Shown first in the title, so that a phone's notification says how bad it is.
SEVERITY_ICONS = {True: "🔴", False: "🟠"}


def redacted_digest(summary: DigestSummary, redactor: Redactor) -> DigestSummary:
    """The digest with the lines it shows redacted, as every card is; the others are only counted."""
    shown = tuple(
        replace(
            line,
            fingerprint=redactor.text(line.fingerprint),
            example_path=redactor.text(line.example_path),
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
        "color": "red" if summary.has_server_errors else "orange",
        "icon": SEVERITY_ICONS[summary.has_server_errors],
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


def _repeats(repeats: Repeats | None) -> dict[str, Any] | None:
    if repeats is None or repeats.count <= 0:
        return None
    since = None
    if repeats.since is not None:
        since = LarkText(
            datetime.fromtimestamp(repeats.since, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        )
    return {"count": repeats.count, "since": since}
