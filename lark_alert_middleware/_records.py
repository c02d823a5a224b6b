"""The records that pass between the stages: frozen, holding data only.

A source captures an `ErrorEvent`; the pipeline claims it (`ClaimRequest` -> `Claim`) and makes it
an `Alert` with its `Repeats`, or folds it into a `DigestSummary`; the card stage turns either
into a `RenderedCard`, which delivery posts to a `Destination`. `AlerterStats` says what happened.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Frames of a traceback shown on a card: the innermost ones, where the error was raised.
TRACEBACK_FRAMES = 12
# What a slim copy of an event keeps of its texts, in characters (see `ErrorEvent.slim`).
SLIM_TEXT_CHARACTERS = 500


@dataclass(frozen=True, slots=True)
class CapturedBody:
    """The first bytes of a request or response body, and how many bytes there were in all."""

    data: bytes = b""
    size: int = 0
    content_type: str | None = None
    content_encoding: str | None = None

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


NO_BODY = CapturedBody()


def as_text(text: str) -> str:
    """`text`, with any lone surrogate (undecodable bytes) written as `\\udcxx`, so UTF-8 can carry it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def exception_name(exception: BaseException | None) -> str:
    """`ValueError` for builtins, `package.module.Error` otherwise; empty without an exception."""
    if exception is None:
        return ""
    kind = type(exception)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclass(frozen=True, slots=True)
class ExceptionText:
    """An exception as a card shows it, unredacted, holding none of the exception's frames."""

    type_name: str
    message: str
    traceback: str

    @classmethod
    def of(cls, exception: BaseException) -> ExceptionText:
        try:
            message = str(exception)
        except Exception:
            message = "<str() of the exception failed>"
        try:
            formatted = traceback.TracebackException.from_exception(exception, limit=-TRACEBACK_FRAMES)
            trace = "".join(formatted.format()).rstrip("\n")
        except Exception:
            trace = ""
        return cls(exception_name(exception), message, trace)


# Where an error was seen: a failing HTTP response or request (the default), and the others.
HTTP = "http"
WEBSOCKET = "websocket"
BACKGROUND = "background"  # after the response: a background task, or a stream that failed
LOG = "log"
CAPTURE = "capture"
STARTUP = "startup"
RELAY = "relay"
SOURCES = (HTTP, WEBSOCKET, BACKGROUND, LOG, CAPTURE, STARTUP, RELAY)

# How bad an error is, for sources that say so (an HTTP error's comes from its status):
# critical and error are red (and mention), warning orange, info blue, resolved green.
LEVELS = ("critical", "error", "warning", "info", "resolved")
ERROR_LEVELS = frozenset({"critical", "error"})

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One error as a source saw it. Raw: redaction happens before rendering.

    The request fields describe the HTTP request (or websocket, or the request an error
    happened during); a source that has none leaves them empty. A source other than a failing
    response says what failed in `subject` ("RuntimeError in background task after 200 POST
    /export") and gives its grouping rule's `fingerprint`.
    """

    timestamp: float
    duration_seconds: float = 0.0
    method: str = ""
    scheme: str = "http"
    path: str = ""
    route: str | None = None
    query_string: str = ""
    headers: Pairs = ()
    client: str | None = None
    request_id: str = ""
    status_code: int = 0
    request_body: CapturedBody = NO_BODY
    response_body: CapturedBody = NO_BODY
    exception: BaseException | None = None
    trace_id: str | None = None
    # The method as the client sent it (cut short), when `method` groups it as OTHER.
    sent_method: str | None = None
    # Set instead of `exception` once the event waits to be posted (see `without_frames`).
    exception_text: ExceptionText | None = None
    source: str = HTTP
    subject: str | None = None  # what failed, in a few words; None: `<status> <method> <route>`
    fingerprint: str | None = None  # the source's grouping of it; None: the HTTP rule
    level: str | None = None  # one of LEVELS; None: from the status and the exception
    message: str | None = None  # a log record's or a captured message, a relayed alert's text
    logger_name: str | None = None
    details: Pairs = ()  # shown as fields: log `extra`, `capture_*` context, a websocket's counts...
    labels: Pairs = ()  # what identifies a relayed alert (routes match them); shown as fields too
    links: Pairs = ()  # (label, http(s) URL): buttons on the card

    def without_frames(self) -> ErrorEvent:
        """This event with its exception as text: a traceback keeps every frame's locals alive
        (a request body read into memory, say) for as long as the alert waits for its turn."""
        if self.exception is None:
            return self
        return replace(self, exception=None, exception_text=ExceptionText.of(self.exception))

    def slim(self) -> ErrorEvent:
        """What later cards about this error name it by: no bodies, headers, query, details or
        traceback, and texts cut short (kept while its window lasts, so small)."""
        text = self.exception_text
        if text is None and self.exception is not None:
            try:
                message = str(self.exception)
            except Exception:
                message = ""
            text = ExceptionText(exception_name(self.exception), message, "")
        if text is not None:
            text = ExceptionText(text.type_name, text.message[:SLIM_TEXT_CHARACTERS], "")
        return replace(
            self,
            path=self.path[:SLIM_TEXT_CHARACTERS],
            query_string="",
            headers=(),
            request_body=NO_BODY,
            response_body=NO_BODY,
            exception=None,
            exception_text=text,
            subject=None if self.subject is None else self.subject[:SLIM_TEXT_CHARACTERS],
            message=None if self.message is None else self.message[:SLIM_TEXT_CHARACTERS],
            details=(),
            labels=(),
            links=(),
        )

    @property
    def is_error(self) -> bool:
        """A server error or an exception (red, and first in line), rather than a client error (orange)."""
        if self.level is not None:
            return self.level in ERROR_LEVELS
        return self.status_code >= 500 or self.exception is not None or self.exception_text is not None

    @property
    def severity(self) -> str:
        """One of LEVELS: what colour its card is."""
        if self.level is not None:
            return self.level
        return "error" if self.is_error else "warning"

    @property
    def exception_type(self) -> str:
        """The exception's type name (see `exception_name`), held or as text; empty without one."""
        if self.exception_text is not None:
            return self.exception_text.type_name
        return exception_name(self.exception)

    def header(self, name: str) -> str | None:
        """The first value of a request header, by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Repeats:
    """How often the error happened, unreported, since the previous alert for it."""

    count: int
    since: float | None


# What an error's first card in a window says it is: not seen within the memory span, back
# after a quiet spell, or happening still (the card then says how often since the previous one).
NEW = "new"
BACK = "back"
ONGOING = "ongoing"


@dataclass(frozen=True, slots=True)
class History:
    """What the fleet remembered of an error when its window was claimed."""

    novelty: str  # NEW, BACK or ONGOING
    last_seen_at: float | None  # before this occurrence; None when new
    first_seen_at: float | None  # within the memory span; None when new
    total: int  # occurrences remembered, this one included


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim the window of `key`, or, if it is taken, add `repeats_here` and this occurrence to its
    next alert's count.

    `name` (what later cards call the error, cut short), `severity` and `destinations` (where its
    cards go) are remembered with it, so that any replica can send its recovered card.
    """

    key: str
    window_seconds: int
    repeats_here: int
    name: str = ""
    severity: str = ""
    destinations: tuple[int, ...] = ()  # places in the pipeline's list of destinations


@dataclass(frozen=True, slots=True)
class Claim:
    """The store's answer: `first` means this caller raises the alert."""

    first: bool
    remaining_seconds: float
    repeats: int = 0
    previous_alert_at: float | None = None
    history: History | None = None  # with `first`


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Counts inside one window at which `destination` hears of an error again, each once, fleet-wide."""

    destination: int  # its place in the pipeline's list of destinations (0: the default)
    counts: tuple[int, ...]  # ascending, each at least 2 (1 is the window's first card)


@dataclass(frozen=True, slots=True)
class RepeatCount:
    """Repeats of `key` counted in this process since they were last handed over, and whose
    thresholds to check its count against."""

    key: str
    repeats: int
    thresholds: tuple[Thresholds, ...] = ()


@dataclass(frozen=True, slots=True)
class Crossing:
    """The store's answer to a `RepeatCount`: `key`'s count inside its window reached `threshold`
    of `destination`'s, and no caller was told so before."""

    key: str
    destination: int
    threshold: int
    count: int
    window_started_at: float
    previous: int = 0  # the highest threshold announced in the window before this one (0: none)


@dataclass(frozen=True, slots=True)
class Escalation:
    """An error whose count inside its window crossed a threshold."""

    fingerprint: str
    example: ErrorEvent | None  # a slim occurrence this process saw, to name it by; None if forgotten
    threshold: int
    count: int
    window_started_at: float
    counted_at: float


@dataclass(frozen=True, slots=True)
class EscalationNotice:
    """The escalations one check found for one destination: they go out at once, on one card."""

    destination: int
    escalations: tuple[Escalation, ...]
    thresholds: tuple[int, ...]
    # Whom the card mentions when the destination's own cards do not (a route's mention_after).
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tracking:
    """What the stores keep of a service and environment besides each error's own keys (opt-in)."""

    fleet: str = ""  # the key of the service and environment (see `dedup.fleet_of`)
    recovery_after: int = 0  # seconds: errors still firing are tracked, for their recovered card; 0: off
    summary_due: float = 0.0  # when the summary of the period counted now is due; 0: no summary


NO_TRACKING = Tracking()


@dataclass(frozen=True, slots=True)
class Recovery:
    """An error that was carded, then stayed quiet for the recovery span: its episode, as remembered."""

    key: str
    name: str  # as remembered (see ClaimRequest)
    severity: str
    started_at: float  # the episode's first occurrence, after the previous quiet spell
    last_seen_at: float
    count: int  # occurrences in the episode
    destinations: tuple[int, ...] = ()  # where its cards went (see ClaimRequest)


@dataclass(frozen=True, slots=True)
class RecoveryNotice:
    """The errors one sweep found recovered: one green card."""

    recoveries: tuple[Recovery, ...]
    checked_at: float


@dataclass(frozen=True, slots=True)
class SummaryLine:
    """One error on the daily summary: how often in the period, and whether it is new or still firing."""

    name: str  # as remembered (see ClaimRequest)
    severity: str
    count: int
    new: bool
    firing: bool


@dataclass(frozen=True, slots=True)
class DailySummary:
    """The day's errors, for the card a team lead reads in the morning."""

    started_at: float  # the previous summary's time, or when the fleet started counting, if later
    ended_at: float  # when this one was due
    total: int  # errors in the period
    kinds: int  # distinct errors
    new_kinds: int
    lines: tuple[SummaryLine, ...]  # the most frequent, then new ones not among them
    timezone: str = "UTC"


# Cards that are not about one new error: made by the card stage, posted like alerts.
Notice = EscalationNotice | RecoveryNotice | DailySummary


@dataclass(frozen=True, slots=True)
class Alert:
    """A claimed error, waiting for its turn; rendered only when it is about to be posted."""

    fingerprint: str
    event: ErrorEvent
    repeats: Repeats
    history: History | None = None  # None when dedup is off


@dataclass(frozen=True, slots=True)
class DigestLine:
    fingerprint: str
    status_code: int
    count: int
    example_path: str
    route: str | None = None  # the example path's route template, which says what in it is a parameter
    is_error: bool = False  # a server error or an exception


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """What one digest card reports: `total` errors between `started_at` and `ended_at`."""

    started_at: float
    ended_at: float
    total: int
    lines: tuple[DigestLine, ...]  # server errors first, then the most frequent
    uncounted_kinds_total: int
    units: int
    has_errors: bool = False  # a server error or an exception among them, listed or not


@dataclass(frozen=True, slots=True)
class RenderedCard:
    """A card ready to post: its compact JSON text and size in UTF-8 bytes."""

    card: dict[str, Any]
    json_text: str
    size: int
    # When this is the minimal card sent instead: what the template raised for this alert.
    template_error: Exception | None = None


@dataclass(frozen=True, slots=True)
class AlerterStats:
    """A snapshot of what the alerter did since the process started.

    raised: alerting errors seen; deduplicated: repeats inside a window; sent: cards Lark
    accepted (or logged, without a webhook); retried: extra post attempts; failed: cards
    given up on, and cards sent without a part that could not be rendered (each named on the
    card and logged once per cause); coalesced: errors folded into a digest card; dropped:
    errors lost; routed_away: errors the routes send nowhere (a `drop = true` route).
    """

    raised: int = 0
    deduplicated: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    coalesced: int = 0
    dropped: int = 0
    routed_away: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MadeCard:
    """A card made for an alert or a digest, a line saying what it is for the log, and whether
    it is whole (False: parts of it, named on it, could not be shown)."""

    rendered: RenderedCard
    summary: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Destination:
    """Where cards go and how they look there: one Lark bot, or the log when it has no webhook.

    Each destination has its own digest, and each bot its own rate budget (Lark limits every
    bot on its own). With `mention_after`, its `mentions` are not on its ordinary cards: only
    on the card that says the error happened that often in its window.
    """

    name: str
    webhook_url: str | None = field(default=None, repr=False)  # holds the bot's token
    webhook_secret: str | None = field(default=None, repr=False)
    keyword: str | None = None
    template: Path | None = None
    mentions: tuple[str, ...] = ()
    mention_after: int | None = None


@dataclass(frozen=True, slots=True)
class HandedOff:
    """An error on its way from a source to the alerter loop, with the repeats counted for it there."""

    fingerprint: str
    event: ErrorEvent
    repeats_here: int
