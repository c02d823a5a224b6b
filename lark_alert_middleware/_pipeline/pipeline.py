"""The pipeline: from a source's error to the destination's outbox, deduplicated across the fleet.

A source talks to it through a few methods and nothing else: `count_if_reported(known)` and
`is_reported(fingerprint)` (is this error already reported in its window? then it is counted),
`submit(fingerprint, event)` (hand a new one over), `report(event)` (the three at once, for a
source that keeps nothing between errors), `fingerprint_of(event)` (the configured grouping
rule), `name_service(name)` and `count_lost()`. All of them take microseconds on the calling
thread. Everything else runs on the alerter thread (`loop.py`): one
consumer takes what was handed off, routes each error (`routing.py`), claims its window in the
dedup store (one Redis round trip for a burst) and offers the alerts it won to the outboxes of
its destinations; every check interval, the repeats counted on the request path are handed to
the store, which says which escalation thresholds they crossed fleet-wide, and the fleet's
steward (`steward.py`), if this process is it, sweeps for recovered errors and sends the daily
summary when it is due.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from time import monotonic
from zoneinfo import ZoneInfo

import anyio.lowlevel
import anyio.to_thread

from .._card.maker import CardMaker
from .._config import AlertSettings, ConfigurationError
from .._records import (
    BACKGROUND,
    HTTP,
    WEBSOCKET,
    Alert,
    AlerterStats,
    Claim,
    ClaimRequest,
    Crossing,
    Destination,
    ErrorEvent,
    Escalation,
    EscalationNotice,
    HandedOff,
    Notice,
    Recovery,
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
from .routing import Router, Target, Targets, route_dedup_key
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
# The sources whose errors a custom `fingerprint=` function groups: those of a request.
REQUEST_SOURCES = frozenset({HTTP, BACKGROUND, WEBSOCKET})
# A custom fingerprint is cut to this many characters: it may be built from request data.
CUSTOM_FINGERPRINT_CHARACTERS = 1000


@dataclass(frozen=True, slots=True)
class Delivery:
    """A destination and its parts that live outside the alerter loop: card maker and digest."""

    destination: Destination
    cards: CardMaker
    digest: Digest


@dataclass(frozen=True, slots=True)
class LoopParts:
    """What the pipeline uses on the alerter loop, made there (its clients belong to that loop):
    the dedup store and one outbox per delivery, in the same order."""

    store: DedupStore
    outboxes: tuple[Outbox, ...]
    steward: Steward


class Lifecycle(enum.Enum):
    SERVING = "serving"
    SETTLED = "settled"  # lifespan shutdown delivered what had been submitted by then
    CLOSED = "closed"  # the process is exiting: nothing more is posted


class _OnLoop:
    """The pipeline's state on one alerter loop: its parts, its consumer, its periodic checks."""

    def __init__(self, parts: LoopParts, pipeline: Pipeline) -> None:
        self.store = parts.store
        self.outboxes = parts.outboxes
        self.steward = parts.steward
        self.consumer: asyncio.Task[None] | None = None
        # Holds the pipeline weakly: a pipeline no app uses any more is collected, and its checks end.
        self.checker = asyncio.get_running_loop().create_task(
            _check_forever(weakref.ref(pipeline), self, pipeline.settings.check_interval)
        )


async def _check_forever(pipeline: weakref.ref[Pipeline], on_loop: _OnLoop, interval: float) -> None:
    """`Pipeline.check` every `interval` seconds, for as long as the pipeline is in use."""
    while True:
        await asyncio.sleep(interval)
        checked = pipeline()
        if checked is None or checked.closed:
            return
        await checked.check(on_loop)
        del checked  # not held while sleeping


class Pipeline:
    """One per middleware (or other source); built by `build.build_pipeline`."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        deliveries: Sequence[Delivery],
        router: Router,
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
        self.deliveries = tuple(deliveries)
        self.router = router
        # The default destination's (the only one without routes).
        self.cards = deliveries[0].cards
        self.digest = deliveries[0].digest
        # The request path's dedup check: repeats counted in open windows (none opens with dedup off).
        self.windows = windows
        self.counters = counters
        self._pending = pending
        self._service = self.cards.settings.service
        # The window the request path opens for an error until its claim says how long it is.
        self._window_seconds = settings.rate_limit or router.longest_window
        self._all_repeats = windows.all_repeats
        # Escalation: the counts inside a window each destination wants to hear of an error at.
        self._thresholds = {each.destination: each for each in thresholds}
        self._escalating = bool(thresholds)
        # Each error's latest occurrence (slim) and its destinations, while escalation is on.
        self._examples: dict[str, tuple[ErrorEvent, tuple[int, ...]]] = {}
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
            # The alerter is far behind: count the error into its destinations' digests right here.
            self._fold_here(fingerprint, event)

    def _fold_here(self, fingerprint: str, event: ErrorEvent) -> None:
        targets = self._targets(event)
        if not targets:
            self.counters.add("routed_away")
            background_loop.call_soon(self._finish_on_loop, 1)
            return
        self.counters.add("coalesced")
        self._pending.add(len(targets) - 1)
        for target in targets:
            if self.deliveries[target.index].digest.add(fingerprint, event):
                background_loop.call_soon(self._wake_outbox, target.index)

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
        """The error's fingerprint by the configured rule: the custom function for an error of a
        request (a failing response, a background task, a websocket), else the source's own.

        Log records, captured errors, start-up failures and relayed alerts keep their own
        grouping: a function written for requests would group them all as one and silence them.
        """
        custom = self.custom_fingerprint
        if custom is None or event.source not in REQUEST_SOURCES:
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
            for delivery in self.deliveries:
                delivery.cards.name_service(name)

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
        self.check_cards()
        on_loop = self._on_loop.get()
        shared_clients.http()  # imports the HTTP stack and loads the CA certificates
        await anyio.lowlevel.checkpoint()  # imports anyio's asyncio backend, which httpx connects with
        if isinstance(on_loop.store, FallbackDedupStore):
            # A claim on a key no error can have: connects, loads the script, checks Redis works.
            await on_loop.store.claim([ClaimRequest(dedup_key("", "", "warm-up"), 1, 0)], time.time())

    def check_cards(self) -> None:
        """Load every destination's template and render the sample alert with it; ConfigurationError
        naming the route whose template cannot make a card."""
        self.cards.check()
        for delivery in self.deliveries[1:]:
            try:
                delivery.cards.check()
            except ConfigurationError as error:
                problem = str(error).removeprefix("LARK_ALERT_TEMPLATE (template=): ")
                name = delivery.destination.name
                raise ConfigurationError(f"LARK_ALERT_ROUTES: route {name!r}: template: {problem}") from None

    @property
    def closed(self) -> bool:
        """The process is exiting: nothing more is posted."""
        return self._lifecycle is Lifecycle.CLOSED

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
            # routed_away only where routes drop errors: without routes, the line reads as it always did.
            counts = [f"{k} {v}" for k, v in stats.as_dict().items() if v or k != "routed_away"]
            logger.log(level, "lark_alert_middleware: %s", ", ".join(counts))

    def forget_after_fork(self) -> None:
        """In a forked child: what was under way is the parent's to deliver; locks start unheld.

        What this process knows of open windows stays, so the child does not alert them again;
        the repeats counted in them so far are the parent's to report.
        """
        self._handoff.forget_after_fork()
        self._pending.forget_after_fork()
        self.counters.reset()
        for delivery in self.deliveries:
            delivery.digest.forget_after_fork()
        self.windows.forget_after_fork()

    # -- the alerter thread ------------------------------------------------------------------
    def _accept(self) -> None:
        on_loop = self._on_loop.get()
        if on_loop.consumer is None or on_loop.consumer.done():
            on_loop.consumer = asyncio.get_running_loop().create_task(self._consume(on_loop))

    def _wake_outbox(self, index: int) -> None:
        self._on_loop.get().outboxes[index].wake()

    def _finish_on_loop(self, units: int) -> None:
        self._finished(self._on_loop.get(), units)

    async def _consume(self, on_loop: _OnLoop) -> None:
        # What arrived meanwhile is claimed together: one Redis round trip for a burst.
        while batch := self._handoff.take(CLAIM_BATCH):
            routed = self._routed(on_loop, batch)
            try:
                decisions = await self._claims(on_loop, routed)
            except Exception:
                logger.exception("lark_alert_middleware: could not decide %d alerts", len(routed))
                self._lost(on_loop, [work for work, _ in routed])
                continue
            for (work, targets), (claim, offers) in zip(routed, decisions, strict=True):
                try:
                    if self._escalating:
                        self._keep_example(work.fingerprint, work.event, targets)
                    self._decide(on_loop, work, claim, offers)
                except Exception:
                    logger.exception("lark_alert_middleware: could not queue %s's alert", work.fingerprint)
                    self._lost(on_loop, [work])

    def _routed(self, on_loop: _OnLoop, batch: list[HandedOff]) -> list[tuple[HandedOff, Targets]]:
        """Each error with its destinations; those that go nowhere are counted and finished here."""
        routed = []
        for work in batch:
            targets = self._targets(work.event)
            if targets:
                routed.append((work, targets))
            else:
                logger.debug("lark_alert_middleware: %s goes to no destination", work.fingerprint)
                self.counters.add("routed_away")
                self._finished(on_loop, 1)
        return routed

    def _targets(self, event: ErrorEvent) -> Targets:
        try:
            return self.router.targets(event, self._service, self.settings.environment)
        except Exception:  # whatever an event holds, matching it must not silence it
            logger.exception("lark_alert_middleware: could not match an error against the routes")
            return (self.router.default,)

    async def _claims(
        self, on_loop: _OnLoop, routed: list[tuple[HandedOff, Targets]]
    ) -> list[tuple[Claim, list[tuple[Target, Repeats]]]]:
        """Each error's claim, and the destinations it is offered to with the repeats their card shows.

        One claim per error, for its destinations' shortest window; a destination with a longer
        window is claimed in its own key once the error's claim is won (see `routing.py`).
        """
        environment = self.settings.environment
        keys = [dedup_key(self._service, environment, work.fingerprint) for work, _ in routed]
        shortest = [min(target.window_seconds for target in targets) for _, targets in routed]
        requests = [
            ClaimRequest(
                key,
                window,
                work.repeats_here,
                remembered_name(work.event, work.fingerprint),
                work.event.severity,
                tuple(target.index for target in targets),
            )
            for key, window, (work, targets) in zip(keys, shortest, routed, strict=True)
            if window
        ]
        tracking = self._tracking()
        answers = iter(await on_loop.store.claim(requests, time.time(), tracking) if requests else [])
        claims = [next(answers) if window else Claim(True, 0.0) for window in shortest]
        longer = [
            (index, target)
            for index, ((_, targets), claim) in enumerate(zip(routed, claims, strict=True))
            if claim.first
            for target in targets
            if target.window_seconds > shortest[index]
        ]
        # Repeats: the won claim's; a claim that loses also counts the occurrence it was made for.
        own_claims = [
            ClaimRequest(route_dedup_key(keys[index], target), target.window_seconds, claims[index].repeats)
            for index, target in longer
        ]
        own_answers = dict(
            zip(longer, await on_loop.store.claim(own_claims, time.time()) if own_claims else [], strict=True)
        )
        decisions = []
        for index, ((_, targets), claim) in enumerate(zip(routed, claims, strict=True)):
            offers = []
            for target in targets if claim.first else ():
                own = own_answers.get((index, target))
                if own is None:
                    offers.append((target, Repeats(claim.repeats, claim.previous_alert_at)))
                elif own.first:
                    offers.append((target, Repeats(own.repeats, own.previous_alert_at)))
            decisions.append((claim, offers))
        return decisions

    def _tracking(self) -> Tracking:
        summary_due = self._schedule.due_after(time.time()) if self._schedule is not None else 0.0
        return Tracking(
            fleet_of(self._service, self.settings.environment),
            self.settings.recovery_after or 0,
            summary_due,
        )

    def _decide(
        self, on_loop: _OnLoop, work: HandedOff, claim: Claim, offers: list[tuple[Target, Repeats]]
    ) -> None:
        if not claim.first:
            self.windows.extend(work.fingerprint, time.monotonic() + claim.remaining_seconds)
            self.counters.add("deduplicated")
            logger.debug("lark_alert_middleware: %s already reported in this window", work.fingerprint)
            self._finished(on_loop, 1)
            return
        if claim.remaining_seconds != self._window_seconds:  # routed to a window of another length
            self.windows.extend(work.fingerprint, time.monotonic() + claim.remaining_seconds)
        logger.debug("lark_alert_middleware: %s claimed; alerting", work.fingerprint)
        event = work.event.without_frames() if len(offers) > 1 else work.event
        for number, (target, repeats) in enumerate(offers):
            if number:
                self._pending.add()  # one unit of pending work per card: the hand-off counted the first
            on_loop.outboxes[target.index].offer(Alert(work.fingerprint, event, repeats, claim.history))

    def _lost(self, on_loop: _OnLoop, batch: list[HandedOff]) -> None:
        """Errors that could not be decided or queued: counted, and their next occurrence alerts."""
        for work in batch:
            self.windows.close(work.fingerprint)
        self.counters.add("dropped", len(batch))
        self._finished(on_loop, len(batch))

    def _finished(self, on_loop: _OnLoop, units: int) -> None:
        if self._pending.finish(units):
            for outbox in on_loop.outboxes:
                outbox.drained()

    def _keep_example(self, fingerprint: str, event: ErrorEvent, targets: Targets) -> None:
        """The error's latest occurrence, slim, to name it on an escalation card, and where it goes."""
        examples = self._examples
        examples.pop(fingerprint, None)  # the latest last: the oldest are dropped first
        if len(examples) >= EXAMPLES_KEPT:
            make_room(examples, EXAMPLES_KEPT, lambda _: False, examples.__delitem__)
        examples[fingerprint] = (event.slim(), tuple(target.index for target in targets))

    def _thresholds_of(self, fingerprint: str) -> tuple[Thresholds, ...]:
        """The thresholds of the error's destinations (the default's, if it was forgotten)."""
        known = self._examples.get(fingerprint)
        destinations = known[1] if known is not None else (0,)
        return tuple(self._thresholds[index] for index in destinations if index in self._thresholds)

    async def check(self, on_loop: _OnLoop) -> None:
        """Once a check interval: hand the repeats counted here to the store, so that whichever
        replica alerts next reports them, and announce the escalation thresholds they crossed;
        then, if this process is the fleet's steward and still serving, what must happen once
        per fleet (a pipeline whose app has shut down leaves that to the replicas still up)."""
        tracking = self._tracking()
        try:
            await self._hand_over_repeats(on_loop, tracking)
        except Exception:
            logger.exception("lark_alert_middleware: could not record repeat counts")
        if self._lifecycle is not Lifecycle.SERVING:
            return
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
        counts = [RepeatCount(key, repeats[fp], self._thresholds_of(fp)) for key, fp in fingerprints.items()]
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
        by_destination: dict[int, list[Recovery]] = defaultdict(list)
        for recovery in sorted(recoveries, key=lambda recovery: -recovery.count):
            # Where its cards went (the default, if that was not remembered).
            for index in recovery.destinations or (0,):
                by_destination[index if index < len(self.deliveries) else 0].append(recovery)
        for index, recovered in by_destination.items():
            self._notify(on_loop, RecoveryNotice(tuple(recovered), now), index)

    async def _summarise(self, on_loop: _OnLoop, tracking: Tracking, schedule: DailySchedule) -> None:
        """Say the fleet counts the current period; send the latest one due, if it is ours to send."""
        now = time.time()
        await on_loop.steward.watch(tracking.fleet, tracking.summary_due, now)
        due = schedule.due_before(now)
        firing_since = now - (tracking.recovery_after or FIRING_SECONDS)
        summary = await on_loop.steward.summary(tracking.fleet, (schedule.previous(due), due), firing_since)
        if summary is not None:
            self._notify(on_loop, replace(summary, timezone=self.settings.timezone), 0)

    def _escalate(
        self, on_loop: _OnLoop, crossings: list[Crossing], fingerprints: dict[str, str], now: float
    ) -> None:
        """One card per destination for the thresholds one check found crossed; a route with
        `mention_after` mentions its people on the card that says the error reached it."""
        by_destination: dict[int, list[Escalation]] = defaultdict(list)
        mentioning: set[int] = set()
        for crossing in crossings:
            fingerprint = fingerprints[crossing.key]
            known = self._examples.get(fingerprint)
            by_destination[crossing.destination].append(
                Escalation(
                    fingerprint,
                    known[0] if known is not None else None,
                    crossing.threshold,
                    crossing.count,
                    crossing.window_started_at,
                    now,
                )
            )
            mention_after = self.deliveries[crossing.destination].destination.mention_after
            if mention_after is not None and crossing.previous < mention_after <= crossing.threshold:
                mentioning.add(crossing.destination)
        for index, escalations in by_destination.items():
            escalations.sort(key=lambda escalation: -escalation.count)
            destination = self.deliveries[index].destination
            mentions = destination.mentions if index in mentioning else ()
            counts = self._thresholds[index].counts
            self._notify(on_loop, EscalationNotice(index, tuple(escalations), counts, mentions), index)

    def _notify(self, on_loop: _OnLoop, notice: Notice, destination: int) -> None:
        """Queue a card that is not about one new error for a destination, unless the app has shut down.

        Not pending work: flush() and shutdown do not wait for it, so that an app dropped by a
        test, whose notice may be posting to a receiver long gone, cannot hold the process's exit.
        """
        if self._lifecycle is not Lifecycle.SERVING:
            logger.debug("lark_alert_middleware: the app has shut down; %s not sent", type(notice).__name__)
            return
        on_loop.outboxes[destination].offer_notice(notice)

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
                for outbox in on_loop.outboxes:
                    outbox.drain()
                if not await self._pending.until_none(self.shutdown_timeout):
                    self._give_up_at_shutdown()
            self.log_stats()
        self._lifecycle = Lifecycle.CLOSED
        if on_loop is not None:
            for outbox in on_loop.outboxes:
                outbox.close()

    def _give_up_at_shutdown(self) -> None:
        # Counted as dropped now: the process is about to end with them undelivered.
        pending = self._pending.count
        self.counters.add("dropped", pending)
        logger.warning(
            "lark_alert_middleware: %d alerts still pending after %.1fs at shutdown; dropped",
            pending,
            self.shutdown_timeout,
        )
