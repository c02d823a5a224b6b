"""What this process already knows is reported: the request path's only dedup check.

A storm of one error must not cost a Redis round trip, nor even a hand-off to the alerter
thread, per request. Once a window is known to be open (claimed here, or found claimed by
another replica), repeats are counted here until it ends: a dictionary lookup and two
lock-free increments.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field


class Tally:
    """A count that any thread adds to without taking a lock: `next(tally.steps)`.

    `next()` on an `itertools.count` is one atomic step under CPython's GIL, where `+= 1` on
    an attribute can lose an update between threads. Reading is a `next()` too; its own step
    is remembered and left out. Reads must not race each other: hold a lock around them.
    """

    __slots__ = ("_not_counted", "steps")

    def __init__(self) -> None:
        self.steps = itertools.count()
        self._not_counted = 0

    def value(self) -> int:
        position = next(self.steps)
        self._not_counted += 1
        return position + 1 - self._not_counted

    def take(self) -> int:
        """The value, and start again from zero."""
        taken = self.value()
        self._not_counted += taken
        return taken


@dataclass(slots=True)
class _Window:
    ends: float
    repeats: Tally = field(default_factory=Tally)


class SuppressionWindows:
    """Fingerprint -> end of its known window (monotonic seconds), bounded to `capacity`."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()  # for changes to the dictionary and for reading tallies
        self._all_repeats = Tally()

    def count_repeat(self, fingerprint: str, now: float) -> bool:
        """Count one more occurrence if its window is open; False means it needs a decision."""
        window = self._windows.get(fingerprint)
        if window is None or window.ends <= now:
            return False
        next(window.repeats.steps)
        next(self._all_repeats.steps)
        return True

    @property
    def repeats_counted(self) -> int:
        """Every repeat counted since the start."""
        with self._lock:
            return self._all_repeats.value()

    def open(self, fingerprint: str, ends: float, now: float) -> int:
        """Start a window ending at `ends`; returns the repeats counted since the last one."""
        with self._lock:
            window = self._windows.get(fingerprint)
            if window is None:
                if len(self._windows) >= self._capacity:
                    self._make_room(now)
                self._windows[fingerprint] = _Window(ends)
                return 0
            window.ends = ends
            return window.repeats.take()

    def extend(self, fingerprint: str, ends: float) -> None:
        """Move the end of an open window (once the store said how long it really runs)."""
        with self._lock:
            window = self._windows.get(fingerprint)
            if window is not None:
                window.ends = ends

    def take_expired_repeats(self, now: float) -> dict[str, int]:
        """Repeats of windows that have ended, for the store to hand to the next alert."""
        taken: dict[str, int] = {}
        with self._lock:
            for fingerprint, window in self._windows.items():
                if window.ends <= now:
                    repeats = window.repeats.take()
                    if repeats:
                        taken[fingerprint] = repeats
        return taken

    def _make_room(self, now: float) -> None:
        # Down to 90% at once, so that a storm of distinct errors sweeps once per many inserts.
        expired = [
            key for key, window in self._windows.items() if window.ends <= now and not window.repeats.value()
        ]
        for key in expired:
            del self._windows[key]
        excess = len(self._windows) - self._capacity * 9 // 10
        for key in list(itertools.islice(self._windows, max(0, excess))):
            del self._windows[key]

    def forget_lock_after_fork(self) -> None:
        # Another thread of the parent may have held it at the fork; none holds it here.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)
