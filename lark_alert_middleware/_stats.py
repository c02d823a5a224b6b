"""The alerter's own health: counters written from the request and alerter threads."""

from __future__ import annotations

import threading

from ._records import AlerterStats


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
