"""Getting claimed alerts to Lark: a bounded queue, Lark's rate budget, retries, and digests.

Runs on the alerter thread only. Alerts wait in a queue of `queue_size`; what does not fit
is folded into a digest card ("37 more errors since …"), never dropped and never a flood.
Every post attempt, retries included, first reserves a place in the fleet's rate budget.
Network errors, timeouts, HTTP 5xx and 429, and Lark's frequency-limit code are retried
with exponential backoff and jitter inside a total time budget; refusals no retry can fix
(bad signature, IP allowlist, missing keyword, bad request) are logged once per cause,
with the fix, and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .card import RenderedCard
from .cards import CardMaker, CardWorker
from .clients import shared_clients
from .digest import Digest, DigestSummary
from .event import ErrorEvent
from .lark import FREQUENCY_LIMITED, LarkAnswer, LarkWebhook, Outcome
from .stats import Counters
from .throttle import InProcessRateBudget, RateBudget, wait_for_budget
from .view import Repeats

logger = logging.getLogger("lark_alert_middleware")

# A digest waits for the queue to drain, but never longer than this.
DIGEST_MAX_AGE = 60.0
# Wall-clock seconds a card may take to make (its CPU budget is smaller); then its title goes alone.
CARD_DEADLINE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Alert:
    """A claimed error, waiting for its turn; rendered only when it is about to be posted."""

    fingerprint: str
    event: ErrorEvent
    repeats: Repeats


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 1.0
    max_delay: float = 30.0
    frequency_limited_delay: float = 2.0
    total_seconds: float = 120.0

    def delay(self, attempt: int, answer: LarkAnswer) -> float:
        """Full-jitter exponential backoff; never sooner than Retry-After or Lark's rate window."""
        ceiling = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if answer.code == FREQUENCY_LIMITED or answer.http_status == 429:
            delay = max(delay, self.frequency_limited_delay)
        if answer.retry_after is not None:
            delay = max(delay, min(answer.retry_after, self.max_delay))
        return delay


class Sink(Protocol):
    async def send(self, card: RenderedCard, summary: str) -> bool:
        """Deliver one card; True when it arrived. Never raises."""
        ...


class LogSink:
    """Without a webhook: each alert is one WARNING line (the card itself at DEBUG).

    The lines keep Lark's pace (the same budget, per process), so a storm that would not flood
    the group does not flood the log either; the excess goes into digests as it would for Lark.
    """

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._budget = InProcessRateBudget()

    async def send(self, card: RenderedCard, summary: str) -> bool:
        await wait_for_budget(self._budget)
        self._counters.add("sent")
        logger.warning("lark_alert_middleware alert (LARK_WEBHOOK_URL is not set): %s", summary)
        logger.debug("lark_alert_middleware card: %s", card.json_text)
        return True


class LarkSink:
    """Posts to the webhook within the rate budget, retrying what can succeed."""

    def __init__(
        self,
        webhook: LarkWebhook,
        budget: RateBudget,
        counters: Counters,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._webhook = webhook
        self._budget = budget
        self._counters = counters
        self._policy = policy
        self._reported_refusals: set[int | None] = set()
        # One poster at a time asks the shared budget; the others wait here, not in Redis.
        self._budget_turn = asyncio.Lock()

    async def send(self, card: RenderedCard, summary: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.total_seconds
        attempt = 0
        while True:
            attempt += 1
            client = shared_clients.http()  # before the reservation: creating it can take a while
            async with self._budget_turn:
                await wait_for_budget(self._budget)
            answer = await self._webhook.post(client, card.json_text)
            if answer.outcome is Outcome.DELIVERED:
                self._counters.add("sent")
                logger.debug("lark_alert_middleware: posted %s: Lark answered %s", summary, answer.describe())
                return True
            if answer.outcome is Outcome.REJECTED:
                self._refused(answer, summary)
                return False
            delay = self._policy.delay(attempt, answer)
            if attempt >= self._policy.attempts or loop.time() + delay > deadline:
                self._counters.add("failed")
                logger.warning(
                    "lark_alert_middleware: gave up posting %s to %s after %d attempts: %s",
                    summary,
                    self._webhook.safe_url,
                    attempt,
                    answer.describe(),
                )
                return False
            self._counters.add("retried")
            logger.debug(
                "lark_alert_middleware: %s: %s; retrying in %.1fs", summary, answer.describe(), delay
            )
            await asyncio.sleep(delay)

    def _refused(self, answer: LarkAnswer, summary: str) -> None:
        self._counters.add("failed")
        if answer.code in self._reported_refusals:
            logger.debug("lark_alert_middleware: Lark refused %s: %s", summary, answer.describe())
            return
        self._reported_refusals.add(answer.code)
        logger.error(
            "lark_alert_middleware: Lark refused the alert %s at %s: %s. Not retrying; "
            "alerts will keep failing until this is fixed.",
            summary,
            self._webhook.safe_url,
            answer.describe(),
        )


Finished = Callable[[int], None]


class Delivery:
    """The queue and the sender task; `finished(n)` is called as units of work complete.

    Server errors and exceptions go first: they are posted before client errors, and one that
    finds the queue full takes the place of the newest client error, which goes to the digest.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        cards: CardMaker,
        digest: Digest,
        queue_size: int,
        max_in_flight: int,
        counters: Counters,
        finished: Finished,
    ) -> None:
        self._sink = sink
        self._cards = cards
        self._card_worker = CardWorker()
        self._digest = digest
        self._errors: deque[Alert] = deque()
        self._warnings: deque[Alert] = deque()
        self._queue_size = queue_size
        self._slots = asyncio.Semaphore(max_in_flight)
        self._counters = counters
        self._finished = finished
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self.draining = False
        self._closed = False

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

    def _fold(self, alert: Alert) -> None:
        self._digest.add(alert.fingerprint, alert.event)
        self._counters.add("coalesced")
        logger.debug("lark_alert_middleware: queue full; %s folded into the digest", alert.fingerprint)

    def close(self) -> None:
        """At exit: start no more posts (those under way are the caller's to cancel)."""
        self._closed = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()
        if self._closed:
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    @property
    def idle(self) -> bool:
        return not self._errors and not self._warnings and not self._digest and not self._posts

    async def _send_all(self) -> None:
        while not self._closed:
            self._fold_stale_warnings()
            if self._errors or self._warnings:
                await self._slots.acquire()
                self._start(self._post_alert((self._errors or self._warnings).popleft()))
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
        return self.draining or not self._posts or self._digest_wait() <= 0

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

    async def _post_alert(self, alert: Alert) -> None:
        try:
            making = asyncio.get_running_loop().run_in_executor(
                self._card_worker, self._cards.alert_card, alert
            )
            try:
                card, summary = await asyncio.wait_for(making, CARD_DEADLINE_SECONDS)
            except Exception:  # overdue, or the worker is full of overdue cards
                card, summary = self._cards.overdue_card(alert, CARD_DEADLINE_SECONDS)
            await self._send(card, summary)
        finally:
            self._finished(1)

    async def _post_digest(self, summary: DigestSummary) -> None:
        try:
            making = asyncio.get_running_loop().run_in_executor(
                self._card_worker, self._cards.digest_card, summary
            )
            try:
                card, described = await asyncio.wait_for(making, CARD_DEADLINE_SECONDS)
            except Exception:
                card, described = self._cards.overdue_digest_card(summary, CARD_DEADLINE_SECONDS)
            await self._send(card, described)
        finally:
            self._finished(summary.units)

    async def _send(self, card: RenderedCard, summary: str) -> None:
        try:
            await self._sink.send(card, summary)
        except Exception:  # a sink never raises by contract; if one does, the card is lost, not silent
            self._counters.add("failed")
            logger.exception("lark_alert_middleware: posting %s failed", summary)
