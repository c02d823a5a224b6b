"""The background pipeline: hand-off from requests, dedup, then delivery; drained on shutdown.

Request threads count repeats in `windows` and call `submit`; both take microseconds. Everything
else runs on the alerter thread (see background.py): one consumer takes events in order
and claims each error's window in the dedup store; claimed errors go to delivery.py,
which posts them within Lark's rate budget or folds the excess into a digest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace

import anyio.lowlevel
import anyio.to_thread

from .background import background_loop
from .breaker import CircuitBreaker
from .card import CardRenderer
from .cards import CardMaker
from .clients import shared_clients
from .config import AlertSettings
from .dedup import (
    Claim,
    ClaimRequest,
    DedupStore,
    FallbackDedupStore,
    InProcessDedupStore,
    RedisDedupStore,
    dedup_key,
)
from .delivery import Alert, Delivery, LarkSink, LogSink, Sink
from .digest import Digest
from .event import ErrorEvent
from .lark import LarkWebhook
from .redact import Redactor
from .stats import AlerterStats, Counters
from .suppression import SuppressionWindows
from .throttle import FallbackRateBudget, InProcessRateBudget, RateBudget, RedisRateBudget
from .view import CardSettings, Repeats, card_settings

logger = logging.getLogger("lark_alert_middleware")

# How often repeats counted in windows that have ended are handed to the shared store.
REPEATS_FLUSH_SECONDS = 5.0
CLAIM_BATCH = 100


@dataclass(frozen=True, slots=True)
class _Work:
    fingerprint: str
    event: ErrorEvent
    repeats_here: int


class _LoopSide:
    """The alerter's state on the alerter thread; a new loop (after a fork) gets a new one."""

    def __init__(self, alerter: Alerter, loop: asyncio.AbstractEventLoop) -> None:
        settings = alerter.settings
        self.loop = loop
        # Handed-off errors waiting to be claimed: server errors are claimed first.
        self.errors: deque[_Work] = deque()
        self.warnings: deque[_Work] = deque()
        self.consumer: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        local_store = InProcessDedupStore(settings.dedup_capacity)
        self.store: DedupStore = local_store
        budget: RateBudget = InProcessRateBudget()
        if settings.redis_url is not None:
            redis_client = shared_clients.redis(settings.redis_url.get_secret_value(), settings.redis_timeout)
            breaker = CircuitBreaker(timeout=settings.redis_timeout * 2)
            self.store = FallbackDedupStore(
                RedisDedupStore(redis_client, settings.redis_key_prefix), local_store, breaker
            )
            if settings.webhook_url is not None:
                shared = RedisRateBudget(
                    redis_client, settings.redis_key_prefix, settings.webhook_url.get_secret_value()
                )
                budget = FallbackRateBudget(shared, budget, breaker)
        sink: Sink = LogSink(alerter.counters)
        if settings.webhook_url is not None:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            webhook = LarkWebhook(settings.webhook_url.get_secret_value(), secret, settings.post_timeout)
            sink = LarkSink(webhook, budget, alerter.counters)
        self.delivery = Delivery(
            sink,
            cards=alerter.cards,
            digest=alerter.digest,
            queue_size=settings.queue_size,
            max_in_flight=settings.max_in_flight,
            counters=alerter.counters,
            finished=alerter.finished,
        )
        self.repeats_flusher = loop.create_task(alerter.flush_repeats_forever(self))


class Alerter:
    """One per middleware instance; owns the dedup windows, the counters and the pipeline."""

    def __init__(self, settings: AlertSettings, *, renderer: CardRenderer, redactor: Redactor) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.service = settings.service or "app"
        self.counters = Counters()
        self.digest = Digest()
        self.cards = CardMaker(renderer, redactor, self.card_settings, self.counters)
        self._window_seconds = settings.rate_limit
        # The request path's dedup check: repeats counted in open windows (none opens with dedup off).
        self.windows = SuppressionWindows(settings.dedup_capacity)
        # Events handed off but not yet decided, and every unit of work not yet finished.
        self._handoff_limit = max(1000, 20 * settings.queue_size)
        self._handed_off = 0
        # Events on their way to the alerter thread; one wake-up of its loop takes all that came.
        self._handoffs: deque[_Work] = deque()
        self._handoffs_awaited_on: asyncio.AbstractEventLoop | None = None
        self._unfinished = 0
        self._changed = threading.Condition()
        self._loop_side: _LoopSide | None = None
        # Errors handed to this alerter so far, and how many of them lifespan shutdown waited for:
        # if no more came since, the exit hook that follows has nothing more to wait for.
        self._submitted = 0
        self._settled_at_shutdown = -1
        background_loop.stop_at_exit(self)

    # -- request threads -------------------------------------------------------------------
    def submit(self, fingerprint: str, event: ErrorEvent) -> None:
        """Hand an error to the alerter thread; never blocks, never raises, never loses it."""
        repeats_here = 0
        if self._window_seconds:
            now = time.monotonic()
            # Provisional until the store answers, so that a burst hands off one event, not many.
            repeats_here = self.windows.open(fingerprint, now + self._window_seconds, now)
        self.counters.add("raised")
        logger.debug("lark_alert_middleware: captured %s (request id %s)", fingerprint, event.request_id)
        # Server errors may go on when client errors already overflow: they are never stuck behind them.
        limit = self._handoff_limit * 2 if event.is_error else self._handoff_limit
        with self._changed:
            self._submitted += 1
            self._unfinished += 1
            overflowing = self._handed_off >= limit
            if not overflowing:
                self._handed_off += 1
        if overflowing:
            # The alerter is far behind: count the error into the digest right here.
            self.counters.add("coalesced")
            if self.digest.add(fingerprint, event):
                background_loop.call_soon(self._wake_delivery)
            return
        self._handoffs.append(_Work(fingerprint, event, repeats_here))
        # Waking the loop costs the request tens of microseconds; a burst of errors pays it once.
        # Safe without a lock under the GIL (free-threaded builds would need one): the loop
        # clears the mark before it takes, so nothing is stranded.
        loop = background_loop.loop()
        if self._handoffs_awaited_on is not loop:
            self._handoffs_awaited_on = loop
            loop.call_soon_threadsafe(self._accept)

    # -- any thread ------------------------------------------------------------------------
    def warm_up(self) -> Future[None]:
        """Start the alerter thread and open its connections now, so the first alert pays nothing for them."""
        return background_loop.submit(self._warm_up())

    async def _warm_up(self) -> None:
        side = self._side()
        shared_clients.http()  # imports the HTTP stack and loads the CA certificates
        await anyio.lowlevel.checkpoint()  # imports anyio's asyncio backend, which httpx connects with
        if isinstance(side.store, FallbackDedupStore):
            # A claim on a key no error can have: connects, loads the script, checks Redis works.
            await side.store.claim([ClaimRequest(dedup_key("", "", "warm-up"), 1, 0)], time.time())

    def stats(self) -> AlerterStats:
        """What the alerter did so far; repeats counted on the request path are added in here."""
        counted = self.counters.snapshot()
        repeats = self.windows.repeats_counted
        return replace(counted, raised=counted.raised + repeats, deduplicated=counted.deduplicated + repeats)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted error is decided and posted (or given up); False on timeout."""
        if background_loop.is_current():
            raise RuntimeError("flush() would block the alerter thread; await drain() there instead")
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        if self._unfinished:
            background_loop.call_soon(self._start_draining)
        with self._changed:
            return self._changed.wait_for(lambda: self._unfinished == 0, limit)

    async def drain(self, timeout: float | None = None) -> bool:
        """`flush()` for async code on any event loop (asyncio or trio) other than the alerter's."""
        return await anyio.to_thread.run_sync(self.flush, timeout)

    async def drain_at_shutdown(self) -> None:
        """Lifespan shutdown: finish pending alerts within the shutdown timeout, then log the counters.

        Servers may end the process by re-raising SIGTERM after shutdown, so exit hooks cannot be relied on.
        """
        submitted = self._submitted
        if not await self.drain():
            self._give_up_at_shutdown()
        self.log_stats()
        self._settled_at_shutdown = submitted

    @property
    def pending(self) -> int:
        return self._unfinished

    def forget_after_fork(self) -> None:
        """In a forked child: what was under way is the parent's to deliver; locks start unheld.

        What this process knows of open windows stays, so the child does not alert them again;
        the repeats counted in them so far are the parent's to report.
        """
        self._changed = threading.Condition()
        self._handoffs = deque()
        self._handoffs_awaited_on = None
        self._unfinished = self._handed_off = 0
        self._loop_side = None
        self.counters.reset()  # the same object: the card maker counts into it too
        self.digest = Digest()
        self.windows.forget_after_fork()

    # -- alerter thread --------------------------------------------------------------------
    def _side(self) -> _LoopSide:
        loop = asyncio.get_running_loop()
        side = self._loop_side
        if side is None or side.loop is not loop:
            side = self._loop_side = _LoopSide(self, loop)
        return side

    def _accept(self) -> None:
        self._handoffs_awaited_on = None
        side = self._side()
        while self._handoffs:
            work = self._handoffs.popleft()
            (side.errors if work.event.is_error else side.warnings).append(work)
        side.idle.clear()
        if side.consumer is None or side.consumer.done():
            side.consumer = side.loop.create_task(self._consume(side))

    def _wake_delivery(self) -> None:
        side = self._side()
        side.idle.clear()
        side.delivery.wake()

    def _start_draining(self) -> None:
        side = self._side()
        side.delivery.draining = True
        side.delivery.wake()

    async def _consume(self, side: _LoopSide) -> None:
        while side.errors or side.warnings:
            # What arrived meanwhile is claimed together: one Redis round trip for a burst.
            batch = [side.errors.popleft() for _ in range(min(len(side.errors), CLAIM_BATCH))]
            batch += [
                side.warnings.popleft() for _ in range(min(len(side.warnings), CLAIM_BATCH - len(batch)))
            ]
            with self._changed:
                self._handed_off -= len(batch)
            try:
                claims = await self._claims(side, batch)
            except Exception:
                logger.exception("lark_alert_middleware: could not decide %d alerts", len(batch))
                self._lost(batch)
                continue
            for work, claim in zip(batch, claims, strict=True):
                try:
                    self._decide(side, work, claim)
                except Exception:
                    logger.exception("lark_alert_middleware: could not queue %s's alert", work.fingerprint)
                    self._lost([work])

    def _lost(self, batch: list[_Work]) -> None:
        """Errors that could not be decided or queued: counted, and their next occurrence alerts."""
        for work in batch:
            self.windows.close(work.fingerprint)
        self.counters.add("dropped", len(batch))
        self.finished(len(batch))

    async def _claims(self, side: _LoopSide, batch: list[_Work]) -> list[Claim]:
        if not self._window_seconds:
            return [Claim(True, 0.0) for _ in batch]
        requests = [
            ClaimRequest(
                dedup_key(self.service, self.settings.environment, work.fingerprint),
                self._window_seconds,
                work.repeats_here,
            )
            for work in batch
        ]
        return await side.store.claim(requests, time.time())

    def _decide(self, side: _LoopSide, work: _Work, claim: Claim) -> None:
        if not claim.first:
            self.windows.extend(work.fingerprint, time.monotonic() + claim.remaining_seconds)
            self.counters.add("deduplicated")
            logger.debug("lark_alert_middleware: %s already reported in this window", work.fingerprint)
            self.finished(1)
            return
        logger.debug("lark_alert_middleware: %s claimed; alerting", work.fingerprint)
        side.delivery.offer(
            Alert(work.fingerprint, work.event, Repeats(claim.repeats, claim.previous_alert_at))
        )

    def finished(self, units: int) -> None:
        """`units` of work are done (posted, given up, deduplicated)."""
        with self._changed:
            self._unfinished -= units
            if self._unfinished == 0:
                self._changed.notify_all()
        side = self._loop_side
        if side is not None and self._unfinished == 0:
            side.idle.set()
            side.delivery.draining = False

    async def flush_repeats_forever(self, side: _LoopSide) -> None:
        """Hand repeats of ended windows to the store, so whichever replica alerts next reports them."""
        while True:
            await asyncio.sleep(REPEATS_FLUSH_SECONDS)
            repeats = self.windows.take_expired_repeats(time.monotonic())
            if repeats:
                keyed = {
                    dedup_key(self.service, self.settings.environment, fp): n for fp, n in repeats.items()
                }
                try:
                    await side.store.add_repeats(keyed)
                except Exception:
                    logger.exception("lark_alert_middleware: could not record repeat counts")

    def card_settings(self) -> CardSettings:
        return card_settings(self.settings, self.service)

    async def shutdown(self) -> None:
        """At exit, on the alerter thread: finish pending alerts within the timeout, log the counters.

        Then delivery starts nothing new: what still runs is cancelled by the caller.
        """
        side = self._loop_side
        if self._settled_at_shutdown != self._submitted:
            if side is not None and self._unfinished:
                side.delivery.draining = True
                side.delivery.wake()
                try:
                    await asyncio.wait_for(side.idle.wait(), self.shutdown_timeout)
                except asyncio.TimeoutError:
                    self._give_up_at_shutdown()
            self.log_stats()
        if side is not None:
            side.delivery.close()

    def _give_up_at_shutdown(self) -> None:
        # Counted as dropped now: the process is about to end with them undelivered.
        pending = self._unfinished
        self.counters.add("dropped", pending)
        logger.warning(
            "lark_alert_middleware: %d alerts still pending after %.1fs at shutdown; dropped",
            pending,
            self.shutdown_timeout,
        )

    def log_stats(self) -> None:
        """The counters in one line: at INFO, or at WARNING when alerts were lost or given up on."""
        stats = self.stats()
        if stats.raised:
            level = logging.WARNING if stats.failed or stats.dropped else logging.INFO
            logger.log(
                level, "lark_alert_middleware: %s", ", ".join(f"{k} {v}" for k, v in stats.as_dict().items())
            )
