"""The alerts of one destination on their way out: a bounded queue, its digest, and posting.

Runs on the alerter thread only. Alerts wait in a queue of `queue_size`; what does not fit is
folded into the destination's digest card ("37 more errors since …"), never dropped and never a
flood. Server errors and exceptions go first: they are posted before client errors, one that
finds the queue full takes the place of the newest client error (folded into the digest), and
a client error kept waiting a minute by them goes to the digest too. Notices (escalation,
recovered, the daily summary) wait in a queue of their own, after server errors and before
client errors. Cards are made here, within their CPU budget; where a user's template or scrub
hook runs, on a worker thread of their own (`CardWorker`), so that the loop never waits for code
it cannot bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from .._card.maker import CardMaker, CardWorker
from .._lark.sinks import Sink
from .._records import Alert, DigestSummary, MadeCard, Notice
from .._stats import Counters
from .digest import Digest
from .loop import LoopLocal
from .pending import PendingWork

logger = logging.getLogger("lark_alert_middleware")

# A digest waits for the queue to drain, but never longer than this.
DIGEST_MAX_AGE = 60.0
# Wall-clock seconds a card may take to make (its CPU budget is smaller); then its title goes alone.
CARD_DEADLINE_SECONDS = 5.0

# The thread that makes cards: one per alerter loop (a forked child, or a new loop, makes its own).
card_workers = LoopLocal(CardWorker)


class OutboxState(enum.Enum):
    OPEN = "open"  # a digest waits for the queue to drain (or a minute)
    DRAINING = "draining"  # the process is about to exit: a digest goes at once
    CLOSED = "closed"  # the process is exiting: nothing more starts


class Outbox:
    def __init__(
        self,
        sink: Sink,
        *,
        cards: CardMaker,
        digest: Digest,
        queue_size: int,
        max_in_flight: int,
        counters: Counters,
        pending: PendingWork,
    ) -> None:
        self._sink = sink
        self._cards = cards
        self._card_worker = card_workers.get()  # one per alerter loop, shared by every outbox
        self._digest = digest
        self._errors: deque[Alert] = deque()
        self._warnings: deque[Alert] = deque()
        self._notices: deque[Notice] = deque()
        self._queue_size = queue_size
        self._slots = asyncio.Semaphore(max_in_flight)
        self._counters = counters
        self._pending = pending
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self.state = OutboxState.OPEN

    def offer(self, alert: Alert) -> None:
        """Queue an alert, or fold it (or, for a server error, the newest client error) into the digest."""
        # It may wait minutes for Lark's rate budget: not with the frames of its traceback.
        waiting = replace(alert, event=alert.event.without_frames())
        is_error = alert.event.is_error
        if len(self._errors) + len(self._warnings) >= self._queue_size:
            if not is_error or not self._warnings:
                self._fold(waiting)
                self.wake()
                return
            self._fold(self._warnings.pop())
        (self._errors if is_error else self._warnings).append(waiting)
        self.wake()

    def offer_notice(self, notice: Notice) -> None:
        """Queue a notice; past the queue's size the oldest waiting one is given up (counted as dropped)."""
        if len(self._notices) >= self._queue_size:
            self._notices.popleft()
            self._counters.add("dropped")
            logger.warning("lark_alert_middleware: too many notices waiting for Lark; the oldest was dropped")
        self._notices.append(notice)
        self.wake()

    def drain(self) -> None:
        """At exit: send everything now, the digest without waiting for posts under way."""
        if self.state is OutboxState.OPEN:
            self.state = OutboxState.DRAINING
        self.wake()

    def drained(self) -> None:
        """Nothing is pending any more: digests wait for the queue again."""
        if self.state is OutboxState.DRAINING:
            self.state = OutboxState.OPEN

    def close(self) -> None:
        """At exit: start no more posts (those under way are the caller's to cancel)."""
        self.state = OutboxState.CLOSED
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()
        if self.state is OutboxState.CLOSED:
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    def _fold(self, alert: Alert) -> None:
        self._digest.add(alert.fingerprint, alert.event)
        self._counters.add("coalesced")
        logger.debug("lark_alert_middleware: queue full; %s folded into the digest", alert.fingerprint)

    async def _send_all(self) -> None:
        while self.state is not OutboxState.CLOSED:
            self._fold_stale_warnings()
            if self._errors or (self._warnings and not self._notices):
                await self._slots.acquire()
                self._start(self._post_alert((self._errors or self._warnings).popleft()))
            elif self._notices:
                await self._slots.acquire()
                self._start(self._post_notice(self._notices.popleft()))
            elif self._digest and self._digest_due():
                await self._slots.acquire()
                summary = self._digest.take()
                if summary is None:
                    self._slots.release()
                else:
                    self._start(self._post_digest(summary))
            elif self._digest:
                await self._sleep_until_woken(self._digest_wait())
            else:
                return

    def _fold_stale_warnings(self) -> None:
        """Client errors kept waiting by a stream of server errors go to the digest after a while."""
        if not self._errors:
            return
        stale_before = time.time() - DIGEST_MAX_AGE
        while self._warnings and self._warnings[0].event.timestamp < stale_before:
            self._fold(self._warnings.popleft())

    def _digest_due(self) -> bool:
        # Sent once the queue has drained and posts have settled, or when it is a minute old.
        return self.state is OutboxState.DRAINING or not self._posts or self._digest_wait() <= 0

    def _digest_wait(self) -> float:
        started = self._digest.started_at
        return 0.0 if started is None else started + DIGEST_MAX_AGE - time.time()

    async def _sleep_until_woken(self, timeout: float) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))

    def _start(self, post: Coroutine[Any, Any, None]) -> None:
        """Run a post in a slot already acquired; the slot is released when it ends."""
        task = asyncio.get_running_loop().create_task(post)
        self._posts.add(task)
        task.add_done_callback(self._post_done)

    def _post_done(self, task: asyncio.Task[None]) -> None:
        self._posts.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            logger.error("lark_alert_middleware: posting failed", exc_info=task.exception())
        self.wake()

    def _post_alert(self, alert: Alert) -> Coroutine[Any, Any, None]:
        cards = self._cards
        return self._post(partial(cards.alert_card, alert), partial(cards.overdue_card, alert), 1)

    def _post_digest(self, summary: DigestSummary) -> Coroutine[Any, Any, None]:
        cards = self._cards
        return self._post(
            partial(cards.digest_card, summary), partial(cards.overdue_digest_card, summary), summary.units
        )

    def _post_notice(self, notice: Notice) -> Coroutine[Any, Any, None]:
        cards = self._cards
        # Not pending work (see Pipeline._notify): nothing to finish.
        return self._post(partial(cards.notice_card, notice), partial(cards.overdue_notice_card, notice), 0)

    async def _post(
        self, make: Callable[[], MadeCard], overdue: Callable[[float], MadeCard], units: int
    ) -> None:
        """Make the card and send it. Made here, with the built-in template and redaction only (linear,
        within the card's CPU budget: no thread hop, a fifth of a millisecond saved per card);
        made on the card worker when the user's code runs, and past the deadline `overdue`'s instead."""
        try:
            if self._cards.runs_user_code:
                made = await self._made_by_worker(make, overdue)
            else:
                made = make()  # never raises: what cannot be shown is named on the card
            await self._send(made)
        finally:
            if units:
                self._finished(units)

    async def _made_by_worker(
        self, make: Callable[[], MadeCard], overdue: Callable[[float], MadeCard]
    ) -> MadeCard:
        making = asyncio.get_running_loop().run_in_executor(self._card_worker, make)
        try:
            return await asyncio.wait_for(making, CARD_DEADLINE_SECONDS)
        except Exception:  # overdue, or the worker is full of overdue cards
            return overdue(CARD_DEADLINE_SECONDS)

    async def _send(self, made: MadeCard) -> None:
        if not made.complete:
            self._counters.add("failed")  # it still goes out: with what could not be shown named on it
        try:
            await self._sink.send(made.rendered, made.summary)
        except Exception:  # a sink never raises by contract; if one does, the card is lost, not silent
            self._counters.add("failed")
            logger.exception("lark_alert_middleware: posting %s failed", made.summary)

    def _finished(self, units: int) -> None:
        if self._pending.finish(units):
            self.drained()

    @property
    def idle(self) -> bool:
        return (
            not self._errors
            and not self._warnings
            and not self._notices
            and not self._digest
            and not self._posts
        )
