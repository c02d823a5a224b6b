"""The one place a pipeline is put together from settings: for the middleware, the CLI and the tests.

Building is cheap and does nothing an app could notice: no template is loaded, no thread is
started, no connection is opened (the card maker loads its template on first use, and the
parts that belong to the alerter loop are made there).
"""

from __future__ import annotations

from .._card.maker import CardMaker
from .._card.redact import Redactor, ScrubHook
from .._card.view import card_settings
from .._config import AlertSettings
from .._lark.limits import InProcessRateBudget, RateBudget
from .._lark.sinks import LarkSink, LogSink, Sink
from .._lark.webhook import LarkWebhook
from .._records import Destination, Thresholds
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
from .pipeline import LoopParts, Pipeline
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


def card_maker_for(
    settings: AlertSettings,
    destination: Destination,
    *,
    scrub: ScrubHook | None = None,
    service: str | None = None,
) -> CardMaker:
    """What makes the cards of `destination`: its template, and what the settings put on every card."""
    shown_service = service or settings.service or DEFAULT_SERVICE
    return CardMaker(
        Redactor(settings.redact_fields, scrub),
        card_settings(settings, destination, shown_service),
        template=destination.template,
    )


def escalation_thresholds(settings: AlertSettings, destination: Destination) -> tuple[Thresholds, ...]:
    """The counts inside a window at which `destination` hears of an error again; none when off."""
    return (Thresholds(destination.name, settings.escalate_at),) if settings.escalate_at else ()


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
    destination = destination_of(settings)
    cards = card_maker_for(settings, destination, scrub=scrub)
    counters = Counters()
    pending = PendingWork()
    digest = Digest()
    webhook = webhook_for(destination, settings.post_timeout)

    def make_parts() -> LoopParts:
        """On the alerter loop: the dedup store, the rate budget, the sink and the outbox."""
        memory = Memory(settings.memory_days * 24 * 3600, settings.regression_after)
        local_store = InProcessDedupStore(settings.dedup_capacity, memory)
        store: DedupStore = local_store
        steward: Steward = InProcessSteward(local_store)
        budget: RateBudget = InProcessRateBudget()
        if settings.redis_url is not None:
            redis_client = shared_clients.redis(
                settings.redis_url.get_secret_value(), settings.redis_timeout, cluster=settings.redis_cluster
            )
            breaker = CircuitBreaker(timeout=settings.redis_timeout * 2)
            prefix = settings.redis_key_prefix
            store = FallbackDedupStore(RedisDedupStore(redis_client, prefix, memory), local_store, breaker)
            steward = FallbackSteward(RedisSteward(redis_client, prefix), steward, breaker)
            if destination.webhook_url is not None:
                shared = RedisRateBudget(redis_client, settings.redis_key_prefix, destination.webhook_url)
                budget = FallbackRateBudget(shared, budget, breaker)
        sink: Sink = LogSink(counters)
        if webhook is not None:
            sink = LarkSink(webhook, budget, counters, shared_clients.http)
        outbox = Outbox(
            sink,
            cards=cards,
            digest=digest,
            queue_size=settings.queue_size,
            max_in_flight=settings.max_in_flight,
            counters=counters,
            pending=pending,
        )
        return LoopParts(store, outbox, steward)

    return Pipeline(
        settings,
        cards=cards,
        digest=digest,
        windows=SuppressionWindows(settings.dedup_capacity),
        counters=counters,
        pending=pending,
        make_parts=make_parts,
        fingerprint=fingerprint,
        thresholds=escalation_thresholds(settings, destination),
    )
