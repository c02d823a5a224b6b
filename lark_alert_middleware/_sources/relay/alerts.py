"""What every tool's payload becomes: a `Notification` of `RelayedAlert`s, and what they share.

An alert's card is made only when its state changed, so each alert carries where its event is
made (its notification's `EventSource`), not the event itself: a notification re-sent with
nothing new costs no card's worth of work. What a payload holds is cut to what a card can show, so that alerts
waiting their turn hold kilobytes, not the megabyte a payload may be.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple, Protocol

from ..._records import ErrorEvent

# Cuts made when a payload is read: well beyond what a card shows (a label's value: 300
# characters, a title: 600, a message: 1,000), so that nothing shown is cut here.
NAME_CHARACTERS = 100
VALUE_CHARACTERS = 1_000
SUBJECT_CHARACTERS = 1_000
MESSAGE_CHARACTERS = 4_000
PAIRS_KEPT = 50
# A longer link is left out: a link cut short leads nowhere.
LINK_CHARACTERS = 2_000

# The `severity` label's value (any case) -> the card's level. Anything else is an error.
SEVERITY_LEVELS = {
    **dict.fromkeys(("critical", "fatal", "page", "emergency", "alert", "disaster"), "critical"),
    **dict.fromkeys(("error", "err", "high", "major"), "error"),
    **dict.fromkeys(("warning", "warn", "medium", "minor", "average"), "warning"),
    **dict.fromkeys(("info", "information", "informational", "notice", "low", "none", "debug"), "info"),
}
DEFAULT_LEVEL = "error"


class EventSource(Protocol):
    """What makes the events of one notification's alerts, when (and if) they are needed."""

    def event(self, position: int) -> ErrorEvent:
        """The event of the notification's alert at `position`."""
        ...


class RelayedAlert(NamedTuple):
    """One alert of a notification. `identity` names it across notifications ("alertmanager
    1a30ba71cca2921f"); `state` is what it is now ("firing since …"): a card is made when the
    state differs from the last one carded. An alert without identity (a log event) is not
    tracked: the pipeline's window alone deduplicates it. (A named tuple: a payload makes one
    per alert, on the request, and this is the cheapest immutable record.)"""

    identity: str | None
    state: str
    firing: bool
    source: EventSource
    position: int  # in its notification

    def make_event(self) -> ErrorEvent:
        return self.source.event(self.position)


@dataclass(frozen=True, slots=True)
class Notification:
    """What one POST brought: its alerts, how many the sender left out (`max_alerts`), and the
    size of the payload they hold on to until their events are made."""

    alerts: tuple[RelayedAlert, ...]
    left_out: int = 0
    size: int = 0

    @property
    def tracked(self) -> bool:
        return any(alert.identity is not None for alert in self.alerts)


def level_of(labels: Mapping[str, str]) -> str:
    """The card's level from the `severity` label: critical/error red, warning orange, info blue."""
    severity = labels.get("severity")
    if severity is None:
        return DEFAULT_LEVEL
    return SEVERITY_LEVELS.get(severity.strip().lower(), DEFAULT_LEVEL)


def labels_hash(labels: Mapping[str, str]) -> str:
    """An alert's identity from its labels, as Alertmanager's own fingerprint is: 16 hex digits."""
    text = json.dumps(sorted(labels.items()), ensure_ascii=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def epoch(moment: datetime | None) -> float | None:
    """Seconds since the epoch; None for Go's zero time (`0001-01-01T00:00:00Z`: not set) or none."""
    if moment is None or moment.year < 1970:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def now_or(seconds: float | None) -> float:
    return time.time() if seconds is None else seconds


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pairs(items: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Name-value pairs as a card may show them: the first PAIRS_KEPT, each cut."""
    kept: list[tuple[str, str]] = []
    for name, value in items:
        if len(kept) == PAIRS_KEPT:
            break
        kept.append((cut(name, NAME_CHARACTERS), cut(value, VALUE_CHARACTERS)))
    return tuple(kept)


def links(*candidates: tuple[str, str | None]) -> tuple[tuple[str, str], ...]:
    """The (label, URL) pairs that are http(s) links short enough to be whole."""
    return tuple(
        (label, url)
        for label, url in candidates
        if url and len(url) <= LINK_CHARACTERS and url.startswith(("http://", "https://"))
    )


def group_line(still_firing: int, left_out: int) -> str:
    """What a card says of the rest of its group: "and 12 still firing"."""
    parts = []
    if still_firing:
        parts.append(f"and {still_firing} still firing")
    if left_out:
        parts.append(f"{left_out} more the sender left out (max_alerts)")
    return "; ".join(parts)
