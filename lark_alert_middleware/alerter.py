"""The background pipeline: hand-off from requests, dedup, render, post, drain on shutdown.

Request threads call `is_repeat` and `submit`; both return in microseconds. Everything
else runs on the alerter thread (see background.py), where one consumer takes events in
order: claim the window in the dedup store, render the card, hand it to the poster.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import anyio.to_thread

from .background import background_loop
from .card import CardRenderer
from .clients import shared_clients
from .config import AlertSettings
from .dedup import DedupStore, FallbackDedupStore, InProcessDedupStore, RedisDedupStore, dedup_key
from .delivery import Poster
from .event import ErrorEvent
from .lark import LarkWebhook
from .markup import mention_markup
from .redact import Redactor
from .stats import AlerterStats, Counters
from .suppression import SuppressionWindows
from .view import CardSettings, Repeats, build_view

logger = logging.getLogger("lark_alert_middleware")


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
        self.inbox: deque[_Work] = deque()
        self.consumer: asyncio.Task[None] | None = None
        self.posts: set[asyncio.Task[bool]] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        local_store = InProcessDedupStore(settings.dedup_capacity)
        self.store: DedupStore = local_store
        if settings.redis_url is not None:
            redis_client = shared_clients.redis(settings.redis_url.get_secret_value(), settings.redis_timeout)
            self.store = FallbackDedupStore(
                RedisDedupStore(redis_client, settings.redis_key_prefix),
                local_store,
                timeout=settings.redis_timeout,
            )
        self.poster: Poster | None = None
        if settings.webhook_url is not None:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            webhook = LarkWebhook(settings.webhook_url.get_secret_value(), secret)
            self.poster = Poster(webhook, alerter.counters)


class Alerter:
    """One per middleware instance; owns the dedup windows, the counters and the pipeline."""

    def __init__(self, settings: AlertSettings, *, renderer: CardRenderer, redactor: Redactor) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.service = settings.service or "app"
        self.counters = Counters()
        self._renderer = renderer
        self._redactor = redactor
        self._mentions = mention_markup(settings.mention)
        self._window_seconds = settings.rate_limit
        self._windows = SuppressionWindows(settings.dedup_capacity)
        self._outstanding = 0
        self._changed = threading.Condition()
        self._loop_side: _LoopSide | None = None
        background_loop.stop_at_exit(self)

    # -- request threads -------------------------------------------------------------------
    def is_repeat(self, fingerprint: str) -> bool:
        """True (and counted) if this process knows the error's window is open."""
        return self._window_seconds > 0 and self._windows.count_repeat(fingerprint, time.monotonic())

    def submit(self, fingerprint: str, event: ErrorEvent) -> None:
        """Hand an error to the alerter thread; never blocks, never raises."""
        repeats_here = 0
        if self._window_seconds:
            now = time.monotonic()
            # Provisional until the store answers, so that a burst hands off one event, not many.
            repeats_here = self._windows.open(fingerprint, now + self._window_seconds, now)
        self.counters.add("raised")
        with self._changed:
            if self._outstanding >= self.settings.queue_size:
                self.counters.add("dropped")
                return
            self._outstanding += 1
        background_loop.call_soon(self._accept, _Work(fingerprint, event, repeats_here))

    # -- any thread ------------------------------------------------------------------------
    def stats(self) -> AlerterStats:
        """What the alerter did so far; repeats counted on the request path are added in here."""
        counted = self.counters.snapshot()
        repeats = self._windows.repeats_counted
        return replace(counted, raised=counted.raised + repeats, deduplicated=counted.deduplicated + repeats)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted error is decided and posted (or given up); False on timeout."""
        if background_loop.is_current():
            raise RuntimeError("flush() would block the alerter thread; await drain() there instead")
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        with self._changed:
            return self._changed.wait_for(lambda: self._outstanding == 0, limit)

    async def drain(self, timeout: float | None = None) -> bool:
        """`flush()` for async code on any event loop (asyncio or trio) other than the alerter's."""
        return await anyio.to_thread.run_sync(self.flush, timeout)

    @property
    def pending(self) -> int:
        return self._outstanding

    # -- alerter thread --------------------------------------------------------------------
    def _side(self) -> _LoopSide:
        loop = asyncio.get_running_loop()
        side = self._loop_side
        if side is None or side.loop is not loop:
            side = self._loop_side = _LoopSide(self, loop)
        return side

    def _accept(self, work: _Work) -> None:
        side = self._side()
        side.inbox.append(work)
        side.idle.clear()
        if side.consumer is None or side.consumer.done():
            side.consumer = side.loop.create_task(self._consume(side))

    async def _consume(self, side: _LoopSide) -> None:
        while side.inbox:
            work = side.inbox.popleft()
            try:
                await self._process(side, work)
            except Exception:
                self.counters.add("dropped")
                logger.exception("lark_alert_middleware: could not process an alert")
                self._finished(side)

    async def _process(self, side: _LoopSide, work: _Work) -> None:
        if not self._window_seconds:
            await self._alert(side, work, Repeats(0, None))
            return
        key = dedup_key(self.service, self.settings.environment, work.fingerprint)
        claim = await side.store.claim(key, self._window_seconds, work.repeats_here, time.time())
        if not claim.first:
            self._windows.extend(work.fingerprint, time.monotonic() + claim.remaining_seconds)
            self.counters.add("deduplicated")
            self._finished(side)
            return
        await self._alert(side, work, Repeats(claim.repeats, claim.previous_alert_at))

    async def _alert(self, side: _LoopSide, work: _Work, repeats: Repeats) -> None:
        view = build_view(work.event, work.fingerprint, repeats, self._redactor)
        card = self._renderer.render(view, self.card_settings())
        summary = f"{view.event.status_code} {view.event.method} {view.event.route or view.path}"
        if side.poster is None:
            self.counters.add("sent")
            failure = f" · {view.exception.type}: {view.exception.message}" if view.exception else ""
            logger.warning(
                "lark_alert_middleware alert (LARK_WEBHOOK_URL is not set): %s · %s (%s) · request id %s%s",
                summary,
                self.service,
                self.settings.environment,
                view.event.request_id,
                failure,
            )
            logger.debug("lark_alert_middleware card: %s", card.json_text)
            self._finished(side)
            return
        task = side.loop.create_task(side.poster.deliver(card, summary))
        side.posts.add(task)
        task.add_done_callback(lambda done: self._post_done(side, done))

    def _post_done(self, side: _LoopSide, task: asyncio.Task[bool]) -> None:
        side.posts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters.add("failed")
            logger.error("lark_alert_middleware: posting failed", exc_info=task.exception())
        self._finished(side)

    def _finished(self, side: _LoopSide) -> None:
        with self._changed:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._changed.notify_all()
                side.idle.set()

    def card_settings(self) -> CardSettings:
        logs_url = self.settings.seq_url
        return CardSettings(
            self.service, self.settings.environment, logs_url, self.settings.keyword, self._mentions
        )

    async def shutdown(self) -> None:
        """At exit, on the alerter thread: wait for pending alerts, then log the counters."""
        side = self._loop_side
        if side is not None and self._outstanding:
            try:
                await asyncio.wait_for(side.idle.wait(), self.shutdown_timeout)
            except asyncio.TimeoutError:
                logger.warning("lark_alert_middleware: %d alerts still pending at exit", self._outstanding)
        if self.stats().raised:
            logger.info("lark_alert_middleware: %s", self.stats().as_dict())
