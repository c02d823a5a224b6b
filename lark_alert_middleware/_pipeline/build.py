"""The one place a pipeline is put together from settings: for the middleware, the CLI and the tests.

Building is cheap and does nothing an app could notice: no template is loaded, no thread is
started, no connection is opened (the card maker loads its template on first use, and the
parts that belong to the alerter loop are made there).

Each destination (the default, and one per route that sends) gets its own card maker, digest
and outbox; each webhook its own rate budget, shared by the destinations that post to it.
"""

from __future__ import annotations

from dataclasses import replace

from .._card.maker import CardMaker
from .._card.redact import Redactor, ScrubHook
from .._card.view import card_settings
from .._config import AlertSettings
from .._lark.limits import InProcessRateBudget, RateBudget
from .._lark.sinks import LarkSink, LogSink, Sink
from .._lark.webhook import LarkWebhook
from .._records import Destination, Thresholds
from .._routes_config import Route, captured_statuses
from .._stats import Counters
from .breaker import CircuitBreaker
from .budget import FallbackRateBudget, RedisRateBudget
from .clients import shared_clients
from .dedup import DedupStore, FallbackDedupStore, InProcessDedupStore, RedisDedupStore
from .digest import Digest
from .fingerprint import FingerprintFunction
from .memory import Memory
from .outbox import Outbox
from .pending import PendingWork
from .pipeline import Delivery, LoopParts, Pipeline
from .routing import Router, Target
from .steward import FallbackSteward, InProcessSteward, RedisSteward, Steward
from .windows import SuppressionWindows

DEFAULT_SERVICE = "app"


def destination_of(settings: AlertSettings) -> Destination:
    """The destination the settings name: `LARK_WEBHOOK_URL`, or the log without one."""
    return Destination(
        name="default",
        webhook_url=settings.webhook_url.get_secret_value() if settings.webhook_url else None,
        webhook_secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
        keyword=settings.keyword,
        template=settings.template,
        mentions=settings.mention,
    )


def route_destination(route: Route, default: Destination, settings: AlertSettings) -> Destination:
    """Where a route's cards go: its own webhook, or the default one with its secret and keyword."""
    if route.has_own_webhook:
        webhook_url, webhook_secret, keyword = route.webhook_url, route.webhook_secret, route.keyword
    else:
        webhook_url, webhook_secret = default.webhook_url, default.webhook_secret
        keyword = route.keyword or default.keyword
    return Destination(
        name=route.name,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        keyword=keyword,
        template=route.template or settings.template,
        mentions=route.mention,
        mention_after=route.mention_after,
    )


def routed_destinations(settings: AlertSettings) -> tuple[list[Destination], Router]:
    """The default destination and one per sending route, and the router that picks among them."""
    default = destination_of(settings)
    destinations = [default]
    routes: list[tuple[Route, Target | None]] = []
    for route in settings.routes:
        target = None
        if not route.drop:
            destinations.append(route_destination(route, default, settings))
            window = settings.rate_limit if route.rate_limit is None else route.rate_limit
            target = Target(len(destinations) - 1, route.name, window)
        routes.append((route, target))
    widened = captured_statuses(settings.status_codes, settings.routes) != settings.status_codes
    # Statuses captured only for routes' own status_codes go nowhere else.
    default_statuses = settings.status_codes if widened else None
    router = Router(routes, Target(0, default.name, settings.rate_limit), default_statuses)
    return destinations, router


def card_maker_for(
    settings: AlertSettings,
    destination: Destination,
    *,
    scrub: ScrubHook | None = None,
    service: str | None = None,
) -> CardMaker:
    """What makes the cards of `destination`: its template, and what the settings put on every card."""
    shown_service = service or settings.service or DEFAULT_SERVICE
    if destination.mention_after is not None and destination.mention_after > 1:
        # Not on ordinary cards: only on the escalation card that says the error reached
        # mention_after in its window (`Pipeline._escalate`).
        destination = replace(destination, mentions=())
    return CardMaker(
        Redactor(settings.redact_fields, scrub),
        card_settings(settings, destination, shown_service),
        template=destination.template,
    )


def escalation_thresholds(settings: AlertSettings, destinations: list[Destination]) -> tuple[Thresholds, ...]:
    """For each destination with any, the counts inside a window at which it hears of an error
    again: LARK_ALERT_ESCALATE_AT, and a route's `mention_after` (its card mentions the route's people)."""
    found = []
    for index, destination in enumerate(destinations):
        counts = set(settings.escalate_at)
        if destination.mention_after is not None and destination.mention_after > 1:
            counts.add(destination.mention_after)
        if counts:
            found.append(Thresholds(index, tuple(sorted(counts))))
    return tuple(found)


def webhook_for(destination: Destination, timeout: float) -> LarkWebhook | None:
    """The destination's Lark webhook; None when its cards go to the log."""
    if destination.webhook_url is None:
        return None
    return LarkWebhook(destination.webhook_url, destination.webhook_secret, timeout)


def build_pipeline(
    settings: AlertSettings,
    *,
    scrub: ScrubHook | None = None,
    fingerprint: FingerprintFunction | None = None,
) -> Pipeline:
    """The pipeline of validated `settings`, posting to their destination; `scrub` runs on every
    text, `fingerprint` (if given) groups errors instead of the default rule."""
    destinations, router = routed_destinations(settings)
    deliveries = [
        Delivery(destination, card_maker_for(settings, destination, scrub=scrub), Digest())
        for destination in destinations
    ]
    counters = Counters()
    pending = PendingWork()
    webhooks = [webhook_for(destination, settings.post_timeout) for destination in destinations]

    def make_parts() -> LoopParts:
        """On the alerter loop: the dedup store, the steward, a rate budget per webhook, an outbox per
        destination."""
        memory = Memory(settings.memory_days * 24 * 3600, settings.regression_after)
        local_store = InProcessDedupStore(settings.dedup_capacity, memory)
        store: DedupStore = local_store
        steward: Steward = InProcessSteward(local_store)
        redis_client = breaker = None
        if settings.redis_url is not None:
            redis_client = shared_clients.redis(
                settings.redis_url.get_secret_value(), settings.redis_timeout, cluster=settings.redis_cluster
            )
            breaker = CircuitBreaker(timeout=settings.redis_timeout * 2)
            prefix = settings.redis_key_prefix
            store = FallbackDedupStore(RedisDedupStore(redis_client, prefix, memory), local_store, breaker)
            steward = FallbackSteward(RedisSteward(redis_client, prefix), steward, breaker)
        budgets: dict[str, RateBudget] = {}

        def budget_for(webhook_url: str) -> RateBudget:
            """One per bot, whichever destinations post to it: Lark limits each bot on its own."""
            budget = budgets.get(webhook_url)
            if budget is None:
                budget = InProcessRateBudget()
                if redis_client is not None and breaker is not None:
                    shared = RedisRateBudget(redis_client, settings.redis_key_prefix, webhook_url)
                    budget = FallbackRateBudget(shared, budget, breaker)
                budgets[webhook_url] = budget
            return budget

        outboxes = []
        for delivery, webhook in zip(deliveries, webhooks, strict=True):
            sink: Sink = LogSink(counters)
            webhook_url = delivery.destination.webhook_url
            if webhook is not None and webhook_url is not None:
                sink = LarkSink(webhook, budget_for(webhook_url), counters, shared_clients.http)
            outbox = Outbox(
                sink,
                cards=delivery.cards,
                digest=delivery.digest,
                queue_size=settings.queue_size,
                max_in_flight=settings.max_in_flight,
                counters=counters,
                pending=pending,
            )
            outboxes.append(outbox)
        return LoopParts(store, tuple(outboxes), steward)

    return Pipeline(
        settings,
        deliveries=deliveries,
        router=router,
        windows=SuppressionWindows(settings.dedup_capacity),
        counters=counters,
        pending=pending,
        make_parts=make_parts,
        fingerprint=fingerprint,
        thresholds=escalation_thresholds(settings, destinations),
    )
