"""The pipeline: from a source's error to the destination's outbox, deduplicated across the fleet.

A source talks to it through a few methods and nothing else: `count_if_reported(known)` and
`is_reported(fingerprint)` (is this error already reported in its window? then it is counted),
`submit(fingerprint, event)` (hand a new one over), `report(event)` (the three at once, for a
source that keeps nothing between errors), `fingerprint_of(event)` (the configured grouping
rule), `name_service(name)` and `count_lost()`. All of them take microseconds on the calling
thread. Everything else runs on the alerter thread (`loop.py`): one
consumer takes what was handed off, claims each error's window in the dedup store (one Redis
round trip for a burst) and offers the alerts it won to the outbox; every check interval, the
repeats counted on the request path are handed to the store, which says which escalation
thresholds they crossed fleet-wide, and the fleet's steward (`steward.py`), if this process is
it, sweeps for recovered errors and sends the daily summary when it is due.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from time import monotonic
from zoneinfo import ZoneInfo

import anyio.lowlevel
import anyio.to_thread

from .._card.maker import CardMaker
from .._config import AlertSettings
from .._records import (
    Alert,
    AlerterStats,
    Claim,
    ClaimRequest,
    Crossing,
    ErrorEvent,
    Escalation,
    EscalationNotice,
    HandedOff,
    Notice,
    RecoveryNotice,
    RepeatCount,
    Repeats,
    Thresholds,
    Tracking,
    as_text,
)
from .._stats import Counters
from .clients import shared_clients
from .dedup import DedupStore, FallbackDedupStore, dedup_key, fleet_of
from .digest import Digest
from .fingerprint import FingerprintFunction, default_fingerprint
from .handoff import Handoff
from .loop import LoopLocal, background_loop
from .memory import remembered_name
from .outbox import Outbox
from .pending import PendingWork
from .room import make_room
from .schedule import DailySchedule
from .steward import Steward
from .windows import KnownError, SuppressionWindows, Tally

logger = logging.getLogger("lark_alert_middleware")

CLAIM_BATCH = 100
# Errors whose latest occurrence is kept (slim) to name them on an escalation card.
EXAMPLES_KEPT = 1000
# The steward's lease lasts this many checks (at least 2 s): a missed renewal is no handover.
LEASE_CHECKS = 3
# On the daily summary, an error seen this recently is still firing (the recovery span, if set).
FIRING_SECONDS = 600
# A custom fingerprint is cut to this many characters: it may be built from request data.
CUSTOM_FINGERPRINT_CHARACTERS = 1000


@dataclass(frozen=True, slots=True)
class LoopParts:
    """What the pipeline uses on the alerter loop, made there (its clients belong to that loop)."""

    store: DedupStore
    outbox: Outbox
    steward: Steward


class Lifecycle(enum.Enum):
    SERVING = "serving"
    SETTLED = "settled"  # lifespan shutdown delivered what had been submitted by then
    CLOSED = "closed"  # the process is exiting: nothing more is posted


class _OnLoop:
    """The pipeline's state on one alerter loop: its parts, its consumer, its periodic checks."""

    def __init__(self, parts: LoopParts, pipeline: Pipeline) -> None:
        self.store = parts.store
        self.outbox = parts.outbox
        self.steward = parts.steward
        self.consumer: asyncio.Task[None] | None = None
        self.checker = asyncio.get_running_loop().create_task(pipeline.check_forever(self))


class Pipeline:
    """One per middleware (or other source); built by `build.build_pipeline`."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        cards: CardMaker,
        digest: Digest,
        windows: SuppressionWindows,
        counters: Counters,
        pending: PendingWork,
        make_parts: Callable[[], LoopParts],
        fingerprint: FingerprintFunction | None = None,
        thresholds: tuple[Thresholds, ...] = (),
    ) -> None:
        self.settings = settings
        self.custom_fingerprint = fingerprint
        self.shutdown_timeout = settings.shutdown_timeout
        self.cards = cards
        self.digest = digest
        # The request path's dedup check: repeats counted in open windows (none opens with dedup off).
        self.windows = windows
        self.counters = counters
        self._pending = pending
        self._service = cards.settings.service
        self._window_seconds = settings.rate_limit
        self._all_repeats = windows.all_repeats
        # Escalation: the counts inside a window each destination wants to hear of an error at.
        self.thresholds = thresholds
        self._examples: dict[str, ErrorEvent] = {}
        self._schedule = None
        if settings.daily_summary is not None:
            self._schedule = DailySchedule(settings.daily_summary, ZoneInfo(settings.timezone))
        # Escalation, recovery and the summary need counts as they happen, not when windows end.
        self._counts_as_they_happen = bool(thresholds or settings.recovery_after or self._schedule)
        self._handoff = Handoff(max(1000, 20 * settings.queue_size), self._accept)
        self._on_loop = LoopLocal(lambda: _OnLoop(make_parts(), self))
        self._lifecycle = Lifecycle.SERVING
        # Errors submitted so far, and how many of them lifespan shutdown waited for: if no more
        # came since, the exit hook that follows has nothing more to wait for.
        self._submitted = Tally()
        self._settled_submissions = 0
        background_loop.stop_at_exit(self)

    # -- sources (any thread) ----------------------------------------------------------------
    def count_if_reported(self, known: KnownError) -> bool:
        """Whether `known` is reported in a window this process knows is open; if so, counted."""
        window = known.window
        now = monotonic()
        if window.ends <= now:
            # Ended, or not open when last looked at: the alerter may have opened it since.
            window = known.window = self.windows.window_of(known.fingerprint)
            if window.ends <= now:
                return False
        next(window.steps)
        next(self._all_repeats.steps)
        return True

    def is_reported(self, fingerprint: str) -> bool:
        """`count_if_reported` for an error the source does not keep between requests."""
        return self.windows.count_repeat(fingerprint, monotonic())

    def submit(self, fingerprint: str, event: ErrorEvent) -> None:
        """Hand an error over; never blocks, never raises, never loses it."""
        repeats_here = 0
        if self._window_seconds:
            now = time.monotonic()
            # Provisional until the store answers, so that a burst hands off one event, not many.
            repeats_here = self.windows.open(fingerprint, now + self._window_seconds, now)
        self.counters.add("raised")
        logger.debug("lark_alert_middleware: captured %s (request id %s)", fingerprint, event.request_id)
        next(self._submitted.steps)
        self._pending.add()
        if not self._handoff.put(HandedOff(fingerprint, event, repeats_here)):
            # The alerter is far behind: count the error into the digest right here.
            self.counters.add("coalesced")
            if self.digest.add(fingerprint, event):
                background_loop.call_soon(self._wake_outbox)

    def report(self, event: ErrorEvent) -> None:
        """Hand over an error unless it is already reported in its window (then it is counted).

        For sources that keep nothing between errors (logs, websockets, background tasks, code
        that reports what it caught): never raises, never blocks.
        """
        try:
            fingerprint = self.fingerprint_of(event)
            if not self.is_reported(fingerprint):
                self.submit(fingerprint, event)
        except Exception:
            self.count_lost()
            logger.exception("lark_alert_middleware: could not report an error")

    def fingerprint_of(self, event: ErrorEvent) -> str:
        """The error's fingerprint by the configured rule: the custom function, or the default."""
        custom = self.custom_fingerprint
        if custom is None:
            return default_fingerprint(event)
        try:
            fingerprint = str(custom(event))
        except Exception:
            logger.exception("lark_alert_middleware: the fingerprint function failed; using the default")
            return default_fingerprint(event)
        # Made from request data, it may be long or hold lone surrogates: keys and cards need text.
        return as_text(fingerprint[:CUSTOM_FINGERPRINT_CHARACTERS])

    def name_service(self, name: str) -> None:
        """The service's name, once the source knows it (the app's title, unless configured)."""
        if self.settings.service is None:
            self._service = name
            self.cards.name_service(name)

    def count_lost(self) -> None:
        """An error the source could not capture (logged there)."""
        self.counters.add("dropped")

    # -- users and lifespan (any thread) -----------------------------------------------------
    def warm_up(self) -> Future[None]:
        """Start the alerter thread, check the card template, open the connections: the first alert
        pays nothing for them. The future raises ConfigurationError when the template cannot be used."""
        if self._lifecycle is Lifecycle.SETTLED:  # the app starts again after a lifespan shutdown
            self._lifecycle = Lifecycle.SERVING
        return background_loop.submit(self._warm_up())

    async def _warm_up(self) -> None:
        self.cards.check()
        on_loop = self._on_loop.get()
        shared_clients.http()  # imports the HTTP stack and loads the CA certificates
        await anyio.lowlevel.checkpoint()  # imports anyio's asyncio backend, which httpx connects with
        if isinstance(on_loop.store, FallbackDedupStore):
            # A claim on a key no error can have: connects, loads the script, checks Redis works.
            await on_loop.store.claim([ClaimRequest(dedup_key("", "", "warm-up"), 1, 0)], time.time())

    def stats(self) -> AlerterStats:
        """What the pipeline did so far; repeats counted on the request path are added in here."""
        counted = self.counters.snapshot()
        repeats = self.windows.repeats_counted
        return replace(counted, raised=counted.raised + repeats, deduplicated=counted.deduplicated + repeats)

    @property
    def pending(self) -> int:
        return self._pending.count

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted error is decided and posted (or given up); False on timeout."""
        if background_loop.is_current():
            raise RuntimeError("flush() would block the alerter thread; await drain() there instead")
        return self._pending.wait(self.settings.shutdown_timeout if timeout is None else timeout)

    async def drain(self, timeout: float | None = None) -> bool:
        """`flush()` for async code on any event loop (asyncio or trio) other than the alerter's."""
        return await anyio.to_thread.run_sync(self.flush, timeout)

    async def drain_at_shutdown(self) -> None:
        """Lifespan shutdown: finish pending alerts within the shutdown timeout, then log the counters.

        Servers may end the process by re-raising SIGTERM after shutdown, so exit hooks cannot be relied on.
        """
        submitted = self._submitted.value()
        if not await self.drain():
            self._give_up_at_shutdown()
        self.log_stats()
        self._lifecycle, self._settled_submissions = Lifecycle.SETTLED, submitted

    def log_stats(self) -> None:
        """The counters in one line: at INFO, or at WARNING when alerts were lost or given up on."""
        stats = self.stats()
        if stats.raised:
            level = logging.WARNING if stats.failed or stats.dropped else logging.INFO
            logger.log(
                level, "lark_alert_middleware: %s", ", ".join(f"{k} {v}" for k, v in stats.as_dict().items())
            )

    def forget_after_fork(self) -> None:
        """In a forked child: what was under way is the parent's to deliver; locks start unheld.

        What this process knows of open windows stays, so the child does not alert them again;
        the repeats counted in them so far are the parent's to report.
        """
        self._handoff.forget_after_fork()
        self._pending.forget_after_fork()
        self.counters.reset()
        self.digest.forget_after_fork()
        self.windows.forget_after_fork()

    # -- the alerter thread ------------------------------------------------------------------
    def _accept(self) -> None:
        on_loop = self._on_loop.get()
        if on_loop.consumer is None or on_loop.consumer.done():
            on_loop.consumer = asyncio.get_running_loop().create_task(self._consume(on_loop))

    def _wake_outbox(self) -> None:
        self._on_loop.get().outbox.wake()

    async def _consume(self, on_loop: _OnLoop) -> None:
        # What arrived meanwhile is claimed together: one Redis round trip for a burst.
        while batch := self._handoff.take(CLAIM_BATCH):
            try:
                claims = await self._claims(on_loop, batch)
            except Exception:
                logger.exception("lark_alert_middleware: could not decide %d alerts", len(batch))
                self._lost(on_loop, batch)
                continue
            for work, claim in zip(batch, claims, strict=True):
                try:
                    self._decide(on_loop, work, claim)
                except Exception:
                    logger.exception("lark_alert_middleware: could not queue %s's alert", work.fingerprint)
                    self._lost(on_loop, [work])

    async def _claims(self, on_loop: _OnLoop, batch: list[HandedOff]) -> list[Claim]:
        if not self._window_seconds:
            return [Claim(True, 0.0) for _ in batch]
        environment = self.settings.environment
        requests = [
            ClaimRequest(
                dedup_key(self._service, environment, work.fingerprint),
                self._window_seconds,
                work.repeats_here,
                remembered_name(work.event, work.fingerprint),
                work.event.severity,
            )
            for work in batch
        ]
        return await on_loop.store.claim(requests, time.time(), self._tracking())

    def _tracking(self) -> Tracking:
        summary_due = self._schedule.due_after(time.time()) if self._schedule is not None else 0.0
        return Tracking(
            fleet_of(self._service, self.settings.environment),
            self.settings.recovery_after or 0,
            summary_due,
        )

    def _decide(self, on_loop: _OnLoop, work: HandedOff, claim: Claim) -> None:
        if self.thresholds:
            self._keep_example(work.fingerprint, work.event)
        if not claim.first:
            self.windows.extend(work.fingerprint, time.monotonic() + claim.remaining_seconds)
            self.counters.add("deduplicated")
            logger.debug("lark_alert_middleware: %s already reported in this window", work.fingerprint)
            self._finished(on_loop, 1)
            return
        logger.debug("lark_alert_middleware: %s claimed; alerting", work.fingerprint)
        on_loop.outbox.offer(
            Alert(
                work.fingerprint, work.event, Repeats(claim.repeats, claim.previous_alert_at), claim.history
            )
        )

    def _lost(self, on_loop: _OnLoop, batch: list[HandedOff]) -> None:
        """Errors that could not be decided or queued: counted, and their next occurrence alerts."""
        for work in batch:
            self.windows.close(work.fingerprint)
        self.counters.add("dropped", len(batch))
        self._finished(on_loop, len(batch))

    def _finished(self, on_loop: _OnLoop, units: int) -> None:
        if self._pending.finish(units):
            on_loop.outbox.drained()

    def _keep_example(self, fingerprint: str, event: ErrorEvent) -> None:
        examples = self._examples
        examples.pop(fingerprint, None)  # the latest last: the oldest are dropped first
        if len(examples) >= EXAMPLES_KEPT:
            make_room(examples, EXAMPLES_KEPT, lambda _: False, examples.__delitem__)
        examples[fingerprint] = event.slim()

    async def check_forever(self, on_loop: _OnLoop) -> None:
        """Every check interval: hand the repeats counted here to the store, so that whichever
        replica alerts next reports them, and announce the escalation thresholds they crossed;
        then, if this process is the fleet's steward, what must happen once per fleet."""
        while True:
            await asyncio.sleep(self.settings.check_interval)
            tracking = self._tracking()
            try:
                await self._hand_over_repeats(on_loop, tracking)
            except Exception:
                logger.exception("lark_alert_middleware: could not record repeat counts")
            try:
                await self._steward_checks(on_loop, tracking)
            except Exception:
                logger.exception("lark_alert_middleware: the fleet's checks failed")

    async def _hand_over_repeats(self, on_loop: _OnLoop, tracking: Tracking) -> None:
        # Otherwise only ended windows: their counts are read at the next claim.
        repeats = self.windows.take_repeats(time.monotonic(), open_windows=self._counts_as_they_happen)
        if not repeats:
            return
        environment = self.settings.environment
        fingerprints = {dedup_key(self._service, environment, fp): fp for fp in repeats}
        counts = [RepeatCount(key, repeats[fp], self.thresholds) for key, fp in fingerprints.items()]
        now = time.time()
        crossings = await on_loop.store.add_repeats(counts, now, tracking)
        if crossings:
            self._escalate(on_loop, crossings, fingerprints, now)

    async def _steward_checks(self, on_loop: _OnLoop, tracking: Tracking) -> None:
        if not tracking.recovery_after and self._schedule is None:
            return
        lease_seconds = max(LEASE_CHECKS * self.settings.check_interval, 2.0)
        if not await on_loop.steward.lead(tracking.fleet, lease_seconds):
            return
        if tracking.recovery_after:
            await self._sweep(on_loop, tracking)
        if self._schedule is not None:
            await self._summarise(on_loop, tracking, self._schedule)

    async def _sweep(self, on_loop: _OnLoop, tracking: Tracking) -> None:
        now = time.time()
        recoveries = await on_loop.steward.recovered(tracking.fleet, tracking.recovery_after, now)
        if recoveries:
            recoveries.sort(key=lambda recovery: -recovery.count)
            self._notify(on_loop, RecoveryNotice(tuple(recoveries), now))

    async def _summarise(self, on_loop: _OnLoop, tracking: Tracking, schedule: DailySchedule) -> None:
        """Say the fleet counts the current period; send the latest one due, if it is ours to send."""
        now = time.time()
        await on_loop.steward.watch(tracking.fleet, tracking.summary_due, now)
        due = schedule.due_before(now)
        firing_since = now - (tracking.recovery_after or FIRING_SECONDS)
        summary = await on_loop.steward.summary(tracking.fleet, (schedule.previous(due), due), firing_since)
        if summary is not None:
            self._notify(on_loop, replace(summary, timezone=self.settings.timezone))

    def _escalate(
        self, on_loop: _OnLoop, crossings: list[Crossing], fingerprints: dict[str, str], now: float
    ) -> None:
        """One card per destination for the thresholds one check found crossed."""
        by_destination: dict[str, list[Escalation]] = defaultdict(list)
        for crossing in crossings:
            fingerprint = fingerprints[crossing.key]
            by_destination[crossing.destination].append(
                Escalation(
                    fingerprint,
                    self._examples.get(fingerprint),
                    crossing.threshold,
                    crossing.count,
                    crossing.window_started_at,
                    now,
                )
            )
        counts = {thresholds.destination: thresholds.counts for thresholds in self.thresholds}
        for destination, escalations in by_destination.items():
            escalations.sort(key=lambda escalation: -escalation.count)
            self._notify(
                on_loop, EscalationNotice(destination, tuple(escalations), counts.get(destination, ()))
            )

    def _notify(self, on_loop: _OnLoop, notice: Notice) -> None:
        """Queue a card that is not about one new error, unless the app has shut down.

        Not pending work: flush() and shutdown do not wait for it, so that an app dropped by a
        test, whose notice may be posting to a receiver long gone, cannot hold the process's exit.
        """
        if self._lifecycle is not Lifecycle.SERVING:
            logger.debug("lark_alert_middleware: the app has shut down; %s not sent", type(notice).__name__)
            return
        on_loop.outbox.offer_notice(notice)

    async def shutdown(self) -> None:
        """At exit, on the alerter thread: finish pending alerts within the timeout, log the counters.

        Then the outbox starts nothing new: what still runs is cancelled by the caller.
        """
        on_loop = self._on_loop.current()
        settled = (
            self._lifecycle is Lifecycle.SETTLED and self._settled_submissions == self._submitted.value()
        )
        if not settled:
            if on_loop is not None and self._pending.count:
                on_loop.outbox.drain()
                if not await self._pending.until_none(self.shutdown_timeout):
                    self._give_up_at_shutdown()
            self.log_stats()
        self._lifecycle = Lifecycle.CLOSED
        if on_loop is not None:
            on_loop.outbox.close()

    def _give_up_at_shutdown(self) -> None:
        # Counted as dropped now: the process is about to end with them undelivered.
        pending = self._pending.count
        self.counters.add("dropped", pending)
        logger.warning(
            "lark_alert_middleware: %d alerts still pending after %.1fs at shutdown; dropped",
            pending,
            self.shutdown_timeout,
        )
