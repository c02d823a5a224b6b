"""Work handed to the pipeline and not yet finished: what `flush()` and shutdown wait for.

A unit is one error, from its hand-off until it is deduplicated, posted, folded into a digest
that was sent, or given up. Request threads add units; the alerter loop finishes them.
"""

from __future__ import annotations

import asyncio
import threading

from .loop import LoopLocal


class PendingWork:
    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self._none_left = LoopLocal(asyncio.Event)  # set on the alerter loop when none is left

    @property
    def count(self) -> int:
        return self._count

    def add(self, units: int = 1) -> None:
        with self._changed:
            self._count += units

    def finish(self, units: int) -> bool:
        """On the alerter loop: `units` are done; True if none is left."""
        with self._changed:
            self._count -= units
            none_left = self._count == 0
            if none_left:
                self._changed.notify_all()
        if none_left:
            self._none_left.get().set()
        return none_left

    def wait(self, timeout: float) -> bool:
        """From any thread but the alerter's: until none is left; False after `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)

    async def until_none(self, timeout: float) -> bool:
        """On the alerter loop: `wait()` without blocking it."""
        none_left = self._none_left.get()
        if self._count:
            none_left.clear()
            try:
                await asyncio.wait_for(none_left.wait(), timeout)
            except asyncio.TimeoutError:
                return self._count == 0
        return True

    def forget_after_fork(self) -> None:
        """In a forked child: the parent finishes its own work; no lock is held here."""
        self._changed = threading.Condition()
        self._count = 0
