"""`POST /generic`: any other tool, a shell script with curl.

    {"title": "Backup failed", "text": "pg_dump exited 1", "severity": "critical",
     "fingerprint": "backup-db1", "labels": {"host": "db1"}, "url": "https://ci.example.com/42"}

Only `title` is required. Without `fingerprint`, the title and labels say which alert it is.
Deduplicated by the pipeline's window; `severity` takes the values a `severity` label takes,
and `resolved` (a green card).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import Field

from ..._pipeline.fingerprint import relay_fingerprint
from ..._records import RELAY, ErrorEvent
from .alerts import (
    MESSAGE_CHARACTERS,
    SUBJECT_CHARACTERS,
    Notification,
    RelayedAlert,
    cut,
    labels_hash,
    level_of,
    links,
    pairs,
)
from .payload import Payload, validated

FINGERPRINT_CHARACTERS = 200


class GenericAlert(Payload):
    title: str = Field(min_length=1)
    text: str = ""
    severity: str = "error"
    fingerprint: str | None = Field(None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    url: str | None = None


def notification_of(body: bytes) -> Notification:
    """The alert of a generic post; PayloadError names what is wrong with it."""
    alert = validated(GenericAlert, body)
    return Notification((RelayedAlert(None, "", True, GenericEventSource(alert), 0),))


@dataclass(frozen=True, slots=True)
class GenericEventSource:
    alert: GenericAlert

    def event(self, position: int) -> ErrorEvent:
        return _event(self.alert)


def _event(alert: GenericAlert) -> ErrorEvent:
    identity = cut(alert.fingerprint, FINGERPRINT_CHARACTERS) if alert.fingerprint else None
    if identity is None:
        identity = labels_hash({**alert.labels, "\0title": alert.title})
    resolved = alert.severity.strip().lower() == "resolved"
    return ErrorEvent(
        timestamp=time.time(),
        source=RELAY,
        level="resolved" if resolved else level_of({"severity": alert.severity}),
        subject=cut(alert.title, SUBJECT_CHARACTERS),
        message=cut(alert.text, MESSAGE_CHARACTERS) or None,
        logger_name="webhook",
        labels=pairs(alert.labels.items()),
        links=links(("Open", alert.url)),
        fingerprint=relay_fingerprint(f"generic {identity}", resolved=resolved),
    )
