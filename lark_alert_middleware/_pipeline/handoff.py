"""Errors on their way from request threads to the alerter loop, bounded, in two lines.

Handing one off never blocks and never waits on the loop: it is appended, and the loop is woken
once for all that arrive before it looks (waking it costs a request tens of microseconds). Past
`limit` errors waiting to be claimed, a client error is refused (the caller folds it into the
digest); a server error may wait up to twice that, so client errors never crowd one out. The
loop takes server errors first.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from .._records import HandedOff
from .loop import background_loop


class Handoff:
    def __init__(self, limit: int, on_arrival: Callable[[], None]) -> None:
        self._limit = limit
        self._on_arrival = on_arrival
        self._lock = threading.Lock()
        self._waiting = 0  # handed off and not yet taken for a claim
        self._arrived: deque[HandedOff] = deque()
        self._errors: deque[HandedOff] = deque()
        self._warnings: deque[HandedOff] = deque()
        self._awaited_on: asyncio.AbstractEventLoop | None = None  # the loop woken, not yet looking

    def put(self, work: HandedOff) -> bool:
        """From any thread: hand `work` off; False when the hand-off is full for it."""
        limit = self._limit * 2 if work.event.is_error else self._limit
        with self._lock:
            if self._waiting >= limit:
                return False
            self._waiting += 1
        self._arrived.append(work)
        # Safe without a lock under the GIL (free-threaded builds would need one): the loop
        # clears the mark before it takes, so nothing is stranded.
        loop = background_loop.loop()
        if self._awaited_on is not loop:
            self._awaited_on = loop
            loop.call_soon_threadsafe(self._on_arrival)
        return True

    def take(self, most: int) -> list[HandedOff]:
        """On the alerter loop: up to `most` errors to claim, server errors first."""
        self._awaited_on = None
        while self._arrived:
            work = self._arrived.popleft()
            (self._errors if work.event.is_error else self._warnings).append(work)
        batch = [self._errors.popleft() for _ in range(min(len(self._errors), most))]
        batch += [self._warnings.popleft() for _ in range(min(len(self._warnings), most - len(batch)))]
        with self._lock:
            self._waiting -= len(batch)
        return batch

    def forget_after_fork(self) -> None:
        """In a forked child: what was on its way is the parent's; no lock is held here."""
        self._lock = threading.Lock()
        self._arrived, self._errors, self._warnings = deque(), deque(), deque()
        self._waiting = 0
        self._awaited_on = None
