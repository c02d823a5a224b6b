"""What the fleet remembers of each error between windows, and so what its next card says:
New (not seen within the memory span), Back (after a quiet spell), or Repeated (ongoing).

Both dedup stores apply the same rule: Redis in its claim script (one small hash per error,
expiring with the memory span), the in-process store with `Remembered` entries. With recovery
on, the memory also holds the error's current episode: from its first occurrence after a
quiet spell of the recovery span, and how often it happened since.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._card.view import http_subject
from .._records import BACK, NEW, ONGOING, ErrorEvent, History, Recovery
from .fingerprint import UNMATCHED_ROUTE

# How much of an error's name is remembered with it (see `remembered_name`).
REMEMBERED_NAME_CHARACTERS = 300


def remembered_name(event: ErrorEvent, fingerprint: str) -> str:
    """What recovered cards and the summary call an error, whichever replica sends them: for a
    failing response its status, method and route template (never its path); else its fingerprint."""
    if event.subject is None and event.fingerprint is None:
        return http_subject(event, event.route or UNMATCHED_ROUTE)[:REMEMBERED_NAME_CHARACTERS]
    return fingerprint[:REMEMBERED_NAME_CHARACTERS]


@dataclass(frozen=True, slots=True)
class Memory:
    """How long errors are remembered, and how long a quiet spell makes an error Back."""

    seconds: int = 14 * 24 * 3600
    regression_after: int = 24 * 3600

    def novelty(self, last_seen: float | None, now: float) -> str:
        if last_seen is None or now - last_seen >= self.seconds:
            return NEW
        return BACK if now - last_seen >= self.regression_after else ONGOING


DEFAULT_MEMORY = Memory()


@dataclass(slots=True)
class Remembered:
    """One error's memory in-process."""

    name: str
    severity: str
    first_seen: float
    last_seen: float
    total: int = 0
    episode_started: float = 0.0
    episode_total: int = 0
    destinations: tuple[int, ...] = ()

    def seen(self, occurrences: int, now: float) -> None:
        self.total += occurrences
        self.episode_total += occurrences
        self.last_seen = max(self.last_seen, now)

    def recovery(self, key: str) -> Recovery:
        return Recovery(
            key,
            self.name,
            self.severity,
            self.episode_started,
            self.last_seen,
            self.episode_total,
            self.destinations,
        )


def remember(
    remembered: Remembered | None,
    memory: Memory,
    claimed: tuple[str, str, int, tuple[int, ...]],
    now: float,
    recovery_after: int = 0,
) -> tuple[Remembered, History]:
    """The memory of an error whose window is claimed now, and the history its card shows.

    `claimed` is the error's name, its severity, the occurrences it counts and its destinations.
    """
    name, severity, occurrences, destinations = claimed
    last_seen = remembered.last_seen if remembered is not None else None
    novelty = memory.novelty(last_seen, now)
    if remembered is None or novelty == NEW:
        remembered = Remembered(name, severity, now, now)
        last_seen = None
    if recovery_after and (
        last_seen is None or now - last_seen >= recovery_after or not remembered.episode_started
    ):
        remembered.episode_started, remembered.episode_total = now, 0
    first_seen = None if novelty == NEW else remembered.first_seen
    remembered.name, remembered.severity = name or remembered.name, severity
    remembered.destinations = destinations or remembered.destinations
    remembered.seen(occurrences, now)
    return remembered, History(novelty, last_seen, first_seen, remembered.total)
