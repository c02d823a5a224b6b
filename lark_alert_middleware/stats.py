"""The alerter's own health: counters written from the request and alerter threads."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class AlerterStats:
    """A snapshot of what the alerter did since the process started.

    raised: alerting errors seen; deduplicated: repeats inside a window; sent: cards Lark
    accepted (or logged, without a webhook); retried: extra post attempts; failed: cards
    given up on, and cards sent without a part that could not be rendered (each named on the
    card and logged once per cause); coalesced: errors folded into a digest card; dropped:
    errors lost.
    """

    raised: int = 0
    deduplicated: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    coalesced: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Counters:
    """Thread-safe increments; `snapshot()` reads them all at one instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(AlerterStats.__dataclass_fields__, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> AlerterStats:
        with self._lock:
            return AlerterStats(**self._values)

    def reset(self) -> None:
        """Back to zero (in a forked child: what was counted so far is the parent's)."""
        with self._lock:
            self._values = dict.fromkeys(self._values, 0)
