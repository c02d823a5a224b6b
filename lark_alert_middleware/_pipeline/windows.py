"""What this process already knows is reported: the request path's only dedup check.

A storm of one error must not cost a Redis round trip, nor even a hand-off to the alerter
thread, per request. Once a window is known to be open (claimed here, or found claimed by
another replica), repeats are counted here until it ends: the request path keeps each error's
window and counts a repeat with two lock-free increments, the window's and the total's.
"""

from __future__ import annotations

import itertools
import math
import threading

from .room import make_room


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


class Window(Tally):
    """One error's window as this process knows it: the repeats counted in it, and when it ends.

    While `ends > now` a repeat is counted with `next(window.steps)`. The request path keeps
    windows between requests, so a window dropped to make room has its end set to minus
    infinity: whoever still holds it then looks the fingerprint up again.
    """

    __slots__ = ("ends",)

    def __init__(self, ends: float) -> None:
        super().__init__()
        self.ends = ends


# What `window_of` answers for a fingerprint with no window: one that has always ended.
NO_WINDOW = Window(-math.inf)


class KnownError:
    """An error as a source remembers it between requests, with the window it was last found in.

    While that window is open, asking whether the error is reported costs no lookup
    (`Pipeline.count_if_reported`). A source may add what it keys the error by (a subclass).
    """

    __slots__ = ("fingerprint", "window")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.window = NO_WINDOW  # its dedup window, once one is found open


class SuppressionWindows:
    """Fingerprint -> its known window (monotonic seconds), bounded to `capacity`.

    A repeat counted in a window is also counted in `all_repeats`, the total the stats read:
    `next(window.steps)`, then `next(windows.all_repeats.steps)`.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()  # for changes to the dictionary and for reading tallies
        self.all_repeats = Tally()
        # Repeats of windows dropped to make room while still open, for the next take.
        self._repeats_of_dropped: dict[str, int] = {}

    def count_repeat(self, fingerprint: str, now: float) -> bool:
        """Count one more occurrence if its window is open; False means it needs a decision."""
        window = self.window_of(fingerprint)
        if window.ends <= now:
            return False
        next(window.steps)
        next(self.all_repeats.steps)
        return True

    def window_of(self, fingerprint: str) -> Window:
        """The fingerprint's window, for a caller that keeps it and counts in it while it is open."""
        return self._windows.get(fingerprint, NO_WINDOW)

    @property
    def repeats_counted(self) -> int:
        """Every repeat counted since the start."""
        with self._lock:
            return self.all_repeats.value()

    def open(self, fingerprint: str, ends: float, now: float) -> int:
        """Start a window ending at `ends`; returns the repeats counted since the last one."""
        with self._lock:
            window = self._windows.get(fingerprint)
            if window is None:
                if len(self._windows) >= self._capacity:
                    self._make_room(now)
                self._windows[fingerprint] = Window(ends)
                return 0
            window.ends = ends
            return window.take()

    def extend(self, fingerprint: str, ends: float) -> None:
        """Move the end of an open window (once the store said how long it really runs)."""
        with self._lock:
            window = self._windows.get(fingerprint)
            if window is not None:
                window.ends = ends

    def close(self, fingerprint: str) -> None:
        """End a window opened for an error that could not be decided: its next occurrence is captured."""
        with self._lock:
            window = self._windows.get(fingerprint)
            if window is not None:
                window.ends = -math.inf

    def take_repeats(self, now: float, *, open_windows: bool = False) -> dict[str, int]:
        """Repeats of windows that have ended (or were dropped), and with `open_windows` of those
        still open too, for the store: it counts them fleet-wide and hands them to the next alert."""
        with self._lock:
            taken, self._repeats_of_dropped = self._repeats_of_dropped, {}
            for fingerprint, window in self._windows.items():
                if open_windows or window.ends <= now:
                    repeats = window.take()
                    if repeats:
                        taken[fingerprint] = taken.get(fingerprint, 0) + repeats
        return taken

    def _make_room(self, now: float) -> None:
        make_room(
            self._windows,
            self._capacity,
            lambda window: window.ends <= now and not window.value(),
            self._drop,
        )

    def _drop(self, fingerprint: str) -> None:
        window = self._windows.pop(fingerprint)
        window.ends = -math.inf  # for a request thread that kept it: look again
        repeats = window.take()
        if repeats and len(self._repeats_of_dropped) < self._capacity:
            self._repeats_of_dropped[fingerprint] = self._repeats_of_dropped.get(fingerprint, 0) + repeats

    def forget_after_fork(self) -> None:
        """In a forked child: the windows stay open; the repeats counted so far are the parent's to report."""
        # Another thread of the parent may have held the lock at the fork; none holds it here.
        self._lock = threading.Lock()
        for window in self._windows.values():
            window.take()
        self.all_repeats.take()
        self._repeats_of_dropped = {}

    def __len__(self) -> int:
        return len(self._windows)
