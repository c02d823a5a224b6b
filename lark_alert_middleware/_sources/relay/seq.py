"""`POST /seq`: one Seq event as Seq.App.HttpRequest posts it, a CLEF object (see the README
for the body template to paste into the app's settings).

`@t` timestamp, `@mt` message template, `@m` rendered message, `@l` level, `@x` exception,
`@i` event type; every other member is a property. Events group as log records do, by level
and message template, and are deduplicated by the pipeline's window: a log event has no
"resolved", so it has no state to track.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import ConfigDict, Field

from ..._pipeline.fingerprint import relayed_log_fingerprint
from ..._records import RELAY, ErrorEvent, ExceptionText
from .alerts import (
    MESSAGE_CHARACTERS,
    SUBJECT_CHARACTERS,
    VALUE_CHARACTERS,
    Notification,
    RelayedAlert,
    cut,
    epoch,
    links,
    now_or,
    pairs,
)
from .payload import Payload, PayloadError, validated

# Serilog's and Seq's level names (any case) -> the card's level; no @l means Information.
SEQ_LEVELS = {
    "fatal": "critical",
    "critical": "critical",
    "error": "error",
    "warning": "warning",
    "information": "info",
    "debug": "info",
    "verbose": "info",
    "trace": "info",
}
REQUEST_ID_PROPERTY = "RequestId"
TRACEBACK_CHARACTERS = 16_000
_EXCEPTION_TYPE = re.compile(r"[\w.`+<>\[\],]{1,200}")
_EVENT_TYPE = re.compile(r"(?:0x)?([0-9A-Fa-f]{1,8})")


class SeqEvent(Payload):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    timestamp: datetime | None = Field(None, alias="@t")
    message: str | None = Field(None, alias="@m")
    template: str | None = Field(None, alias="@mt")
    level: str = Field("Information", alias="@l")
    exception: Any = Field(None, alias="@x")  # text in CLEF; kept whatever a template made it
    event_type: int | str | None = Field(None, alias="@i")


def notification_of(body: bytes, seq_url: str | None = None) -> Notification:
    """The event of a Seq.App.HttpRequest post; PayloadError names what is wrong with it.
    `seq_url` (`SEQ_URL`) gives the card a link to events of the same type in Seq."""
    event = validated(SeqEvent, body)
    if not event.template and not event.message:
        raise PayloadError("@mt: a Seq event needs @mt or @m; paste the body template from the README")
    return Notification((RelayedAlert(None, "", True, SeqEventSource(event, seq_url), 0),))


@dataclass(frozen=True, slots=True)
class SeqEventSource:
    event_document: SeqEvent
    seq_url: str | None

    def event(self, position: int) -> ErrorEvent:
        return _event(self.event_document, self.seq_url)


def _event(event: SeqEvent, seq_url: str | None) -> ErrorEvent:
    template = event.template or event.message or ""
    message = event.message or template
    properties = event.model_extra or {}
    request_id = properties.get(REQUEST_ID_PROPERTY)
    return ErrorEvent(
        timestamp=now_or(epoch(event.timestamp)),
        source=RELAY,
        level=SEQ_LEVELS.get(event.level.lower(), "error"),
        subject=cut(message, SUBJECT_CHARACTERS),
        message=cut(message, MESSAGE_CHARACTERS),
        logger_name="Seq",
        request_id=cut(request_id, 100) if isinstance(request_id, str) else "",
        exception_text=_exception(_shown_whole(event.exception)) if event.exception else None,
        details=pairs(
            (name, _shown(value))
            for name, value in properties.items()
            if not name.startswith("@") and not (name == REQUEST_ID_PROPERTY and isinstance(value, str))
        ),
        links=links(("View in Seq", _events_of_type(seq_url, event.event_type))),
        fingerprint=relayed_log_fingerprint("seq", event.level, template),
    )


def _exception(text: str) -> ExceptionText:
    """`System.DivideByZeroException: Attempted to divide by zero.` and the stack trace after it."""
    first_line = text.split("\n", 1)[0].strip()
    name, colon, message = first_line.partition(":")
    if not colon or not _EXCEPTION_TYPE.fullmatch(name.strip()):
        name, message = "Exception", first_line
    message = cut(message.strip(), MESSAGE_CHARACTERS)
    return ExceptionText(name.strip(), message, cut(text, TRACEBACK_CHARACTERS))


def _shown(value: Any) -> str:
    return cut(_shown_whole(value), VALUE_CHARACTERS)


def _shown_whole(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _events_of_type(seq_url: str | None, event_type: int | str | None) -> str | None:
    """Seq's events page filtered to this event's type (`@EventType`), at the server `SEQ_URL` is on."""
    if seq_url is None or event_type is None:
        return None
    if isinstance(event_type, int):
        if not 0 <= event_type <= 0xFFFFFFFF:
            return None
        hex_digits = f"{event_type:08X}"
    else:
        match = _EVENT_TYPE.fullmatch(event_type.strip())
        if match is None:
            return None
        hex_digits = match.group(1).upper().rjust(8, "0")
    server = seq_url.split("#", 1)[0].split("?", 1)[0].rstrip("/")
    return f"{server}/#/events?filter={quote(f'@EventType = 0x{hex_digits}', safe='')}"
