"""From a validated notification to the pipeline: only the alerts whose state changed.

The request hands its notification off and is answered at once; the alerter loop takes every
notification waiting, asks the state store about all their alerts in one call (one Redis round
trip), makes the cards' events for the alerts that changed and reports them to the pipeline,
which deduplicates, budgets and posts them like every other error. A notification re-sent with
nothing new (Alertmanager's `group_interval`, `repeat_interval`) makes no card; one where an
alert resolved makes one green card, which says how many of its group are still firing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import deque

from ..._config import AlertSettings
from ..._pipeline.breaker import CircuitBreaker
from ..._pipeline.clients import shared_clients
from ..._pipeline.dedup import dedup_key
from ..._pipeline.loop import LoopLocal, background_loop
from ..._pipeline.pending import PendingWork
from ..._pipeline.pipeline import Pipeline
from .alerts import Notification, RelayedAlert, group_line
from .state import FallbackStateStore, InProcessStateStore, KnownStates, RedisStateStore, StateStore

logger = logging.getLogger("lark_alert_middleware")

# Alerts whose state is decided in one go (one script call per SCRIPT_BATCH of them).
STATE_BATCH = 2_000
# Payloads waiting for the loop, in bytes; past this (a loop far behind), alerts go straight to
# the pipeline, whose window still deduplicates them, rather than grow the queue.
MAX_WAITING_BYTES = 64 * 1024 * 1024
GROUP_DETAIL = "In this group"


class Forwarder:
    """Hands the alerts of each notification that changed state to `pipeline`."""

    def __init__(self, pipeline: Pipeline, settings: AlertSettings, service: str) -> None:
        self.shutdown_timeout = settings.shutdown_timeout
        self._pipeline = pipeline
        self._settings = settings
        self._service = service
        self._send_resolved = settings.relay_send_resolved
        self._keep_seconds = settings.relay_repeat_interval
        self._waiting: deque[Notification] = deque()
        self._waiting_bytes = 0
        self._lock = threading.Lock()  # for _waiting_bytes, counted on both threads
        self._pending = PendingWork()
        self._awaited_on: asyncio.AbstractEventLoop | None = None
        self._stores = LoopLocal(self._make_store)
        self._known = KnownStates(settings.dedup_capacity)  # what the store said, until it forgets
        self._consumer: asyncio.Task[None] | None = None
        background_loop.stop_at_exit(self)

    # -- requests (any thread) -------------------------------------------------------------
    def forward(self, notification: Notification) -> None:
        """Hand a notification off; never blocks, never raises."""
        if notification.tracked and self._holds_nothing_new(notification):
            return  # what a re-sending Alertmanager posts most: no need to wake the loop
        if not notification.tracked or not self._room_for(notification.size):
            self._report(notification, [True] * len(notification.alerts))
            return
        self._pending.add()
        self._waiting.append(notification)
        loop = background_loop.loop()
        if self._awaited_on is not loop:  # woken once for all that arrive before it looks
            self._awaited_on = loop
            loop.call_soon_threadsafe(self._start_consumer)

    def _holds_nothing_new(self, notification: Notification) -> bool:
        """Whether every alert is in the state last carded, as far as this process knows."""
        now = time.monotonic()
        known = self._known
        return all(
            alert.identity is not None and known.kept_for(alert.identity, alert.state, now) is not None
            for alert in notification.alerts
        )

    def _room_for(self, size: int) -> bool:
        with self._lock:
            if self._waiting_bytes + size > MAX_WAITING_BYTES:
                return False
            self._waiting_bytes += size
            return True

    def flush(self, timeout: float) -> bool:
        """Wait until every notification handed off is decided; False on timeout."""
        return self._pending.wait(timeout)

    @property
    def redis_in_outage(self) -> bool:
        store = self._stores.current()
        return isinstance(store, FallbackStateStore) and store.breaker.in_outage

    # -- the alerter loop ------------------------------------------------------------------
    def _make_store(self) -> StateStore:
        settings = self._settings
        local = InProcessStateStore(settings.dedup_capacity)
        if settings.redis_url is None:
            return local
        client = shared_clients.redis(
            settings.redis_url.get_secret_value(), settings.redis_timeout, cluster=settings.redis_cluster
        )
        shared = RedisStateStore(client, settings.redis_key_prefix)
        return FallbackStateStore(shared, local, CircuitBreaker(timeout=settings.redis_timeout * 2))

    def _start_consumer(self) -> None:
        if self._consumer is None or self._consumer.done():
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        store = self._stores.get()
        while True:
            self._awaited_on = None
            batch = self._take()
            if not batch:
                return
            try:
                changed = iter(await self._changes(store, batch))
                for notification in batch:
                    self._report(notification, [next(changed) for _ in notification.alerts])
            except Exception:
                logger.exception("lark_alert_middleware: could not report relayed alerts")
            finally:
                with self._lock:
                    self._waiting_bytes -= sum(notification.size for notification in batch)
                self._pending.finish(len(batch))

    async def _changes(self, store: StateStore, batch: list[Notification]) -> list[bool]:
        """Whether each alert of `batch`, in order, changed state (the store decides, one call)."""
        alerts = [alert for notification in batch for alert in notification.alerts]
        environment = self._settings.environment
        keys = [dedup_key(self._service, environment, alert.identity or "") for alert in alerts]
        try:
            answers = await store.record(
                [(key, alert.state) for key, alert in zip(keys, alerts, strict=True)], self._keep_seconds
            )
        except Exception:
            logger.exception("lark_alert_middleware: could not tell which relayed alerts changed")
            return [True] * len(alerts)  # the pipeline's window still deduplicates them
        now = time.monotonic()
        for alert, answer in zip(alerts, answers, strict=True):
            kept_for = self._keep_seconds if answer is None else answer
            self._known.learn(alert.identity or "", alert.state, now + kept_for)
        return [answer is None for answer in answers]

    def _take(self) -> list[Notification]:
        batch: list[Notification] = []
        alerts = 0
        while self._waiting and alerts < STATE_BATCH:
            notification = self._waiting.popleft()
            batch.append(notification)
            alerts += len(notification.alerts)
        return batch

    def _report(self, notification: Notification, changed: list[bool]) -> None:
        still_firing = sum(
            1 for alert, new in zip(notification.alerts, changed, strict=True) if alert.firing and not new
        )
        line = group_line(still_firing, notification.left_out)
        for alert, new in zip(notification.alerts, changed, strict=True):
            if new and (alert.firing or self._send_resolved):
                self._report_alert(alert, line)

    def _report_alert(self, alert: RelayedAlert, line: str) -> None:
        try:
            event = alert.make_event()
            if line:
                event = dataclasses.replace(event, details=(*event.details, (GROUP_DETAIL, line)))
        except Exception:
            self._pipeline.count_lost()
            logger.exception("lark_alert_middleware: could not make the card of a relayed alert")
            return
        self._pipeline.report(event)

    # -- exit ------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """At exit, on the alerter thread: decide what is waiting, within the timeout."""
        await self._pending.until_none(self.shutdown_timeout)

    def forget_after_fork(self) -> None:
        """In a forked child: what was waiting is the parent's."""
        self._waiting, self._waiting_bytes, self._lock = deque(), 0, threading.Lock()
        self._pending.forget_after_fork()
        self._awaited_on = None
        self._consumer = None
