"""Recovered: an error carded, then quiet for the recovery span, gets one green card, fleet-wide once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
import redis.asyncio as redis_asyncio

from lark_alert_middleware import ConfigurationError
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.dedup import InProcessDedupStore, RedisDedupStore
from lark_alert_middleware._pipeline.steward import InProcessSteward, RedisSteward
from lark_alert_middleware._records import ClaimRequest, RepeatCount, Tracking
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app, shop_app
from .conftest import (
    QUICK_MEMORY,
    SHARED_REDIS_URL,
    LarkGroups,
    card_full_title,
    client_for,
    end_window,
    shown_text,
)

pytestmark = pytest.mark.anyio

TRACKING = Tracking("fleet", recovery_after=600)


def claim(key: str, repeats_here: int = 0) -> list[ClaimRequest]:
    return [ClaimRequest(key, 60, repeats_here, f"GET /{key} 500", "error")]


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    yield client
    await client.aclose()


async def test_a_quiet_error_is_found_recovered_once_with_its_episode(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_client, redis_prefix, QUICK_MEMORY)
    stewards = [RedisSteward(redis_client, redis_prefix), RedisSteward(redis_client, redis_prefix)]
    await store.claim(claim("a"), now=1000.0, tracking=TRACKING)
    await store.add_repeats([RepeatCount("a", 41)], now=1030.0, tracking=TRACKING)
    assert await stewards[0].recovered("fleet", 600, now=1600.0) == []  # quiet for 570 s only
    [recovery] = await stewards[0].recovered("fleet", 600, now=1631.0)
    assert (recovery.name, recovery.severity, recovery.count) == ("GET /a 500", "error", 42)
    assert (recovery.started_at, recovery.last_seen_at) == (1000.0, 1030.0)
    assert await stewards[1].recovered("fleet", 600, now=1700.0) == []  # found once, by either


async def test_the_in_process_store_finds_a_quiet_error_recovered_once() -> None:
    store = InProcessDedupStore(100, QUICK_MEMORY)
    steward = InProcessSteward(store)
    await store.claim(claim("a"), now=1000.0, tracking=TRACKING)
    await store.add_repeats([RepeatCount("a", 9)], now=1030.0, tracking=TRACKING)
    assert await steward.recovered("fleet", 600, now=1600.0) == []
    [recovery] = await steward.recovered("fleet", 600, now=1631.0)
    assert (recovery.count, recovery.started_at, recovery.last_seen_at) == (10, 1000.0, 1030.0)
    assert await steward.recovered("fleet", 600, now=1700.0) == []


async def test_an_error_that_fires_again_after_recovering_starts_a_new_episode(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_client, redis_prefix, QUICK_MEMORY)
    steward = RedisSteward(redis_client, redis_prefix)
    await store.claim(claim("a", repeats_here=4), now=1000.0, tracking=TRACKING)
    assert len(await steward.recovered("fleet", 600, now=1700.0)) == 1
    await end_window(store, "a")
    await store.claim(claim("a"), now=2000.0, tracking=TRACKING)
    [recovery] = await steward.recovered("fleet", 600, now=2700.0)
    assert (recovery.started_at, recovery.count) == (2000.0, 1)


async def test_without_recovery_nothing_is_tracked(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_client, redis_prefix, QUICK_MEMORY)
    await store.claim(claim("a"), now=1000.0, tracking=Tracking("fleet"))
    assert await RedisSteward(redis_client, redis_prefix).recovered("fleet", 600, now=9000.0) == []
    assert [key async for key in redis_client.scan_iter(f"{redis_prefix}{{fleet}}*")] == []


async def test_one_replica_leads_and_another_takes_over_when_its_lease_lapses(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    one, two = RedisSteward(redis_client, redis_prefix), RedisSteward(redis_client, redis_prefix)
    assert await one.lead("fleet", 0.3)
    assert not await two.lead("fleet", 0.3)
    assert await one.lead("fleet", 0.3)  # renewed by its holder
    taken = False
    with anyio.fail_after(5):
        while not taken:  # once `one` stops renewing, its lease lapses
            taken = await two.lead("fleet", 5.0)
            await anyio.sleep(0.05)
    assert not await one.lead("fleet", 5.0)


def test_the_recovery_span_is_off_when_unset_or_blank_and_must_fit_the_memory() -> None:
    assert load_settings().recovery_after is None
    assert load_settings(recovery_after="").recovery_after is None  # type: ignore[typeddict-item]
    assert load_settings(recovery_after=600).recovery_after == 600
    with pytest.raises(ConfigurationError, match="LARK_ALERT_RECOVERY_AFTER"):
        load_settings(recovery_after=0)
    with pytest.raises(ConfigurationError, match="LARK_ALERT_RECOVERY_AFTER"):
        load_settings(memory_days=1, recovery_after=90000)


async def test_an_app_posts_one_green_card_once_an_error_stays_quiet(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, recovery_after=1, check_interval=0.1, rate_limit=1)
    async with client_for(app) as client:
        for _ in range(3):
            assert (await client.get("/conflict")).status_code == 409
        _, recovered = lark_receiver.wait_for_cards(2)  # a second later: after the first, surely
    assert re.fullmatch(
        r"🟢 409 GET /conflict: quiet for \d+ s · orders · production", card_full_title(recovered)
    )
    assert recovered["header"]["template"] == "green"
    assert re.search(r"Quiet for \*\*\d+ s\*\*, after 3 times in 1 s \(from 20", shown_text(recovered))


async def test_the_fleet_tracks_a_bounded_number_of_errors_still_firing(
    redis_client: redis_asyncio.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lark_alert_middleware._pipeline.steward.FIRING_KEPT", 5)
    store = RedisDedupStore(redis_client, redis_prefix, QUICK_MEMORY)
    for index in range(20):
        await store.claim(claim(f"e{index}"), now=1000.0 + index, tracking=TRACKING)
    recovered = await RedisSteward(redis_client, redis_prefix).recovered("fleet", 600, now=1619.5)
    assert [recovery.key for recovery in recovered] == ["e15", "e16", "e17", "e18", "e19"]  # the newest five
    assert await redis_client.zcard(f"{redis_prefix}{{fleet}}:firing") == 0


ROUTES = """
    [[route]]
    name = "payments"
    match = { route = "/payments/*" }
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
"""


async def test_a_recovered_card_goes_where_the_errors_cards_went(
    lark_groups: LarkGroups, write_routes: Callable[[str], Path]
) -> None:
    app = shop_app(
        webhook_url=lark_groups.quiet.url,
        routes=write_routes(ROUTES),
        recovery_after=1,
        check_interval=0.1,
        rate_limit=1,
    )
    async with client_for(app) as client:
        assert (await client.post("/payments/1")).status_code == 500
        assert (await client.post("/orders/1")).status_code == 422
        payments = lark_groups.payments.wait_for_cards(2)
        orders = lark_groups.quiet.wait_for_cards(2)
    assert [card_full_title(card).split(": quiet")[0] for card in payments] == [
        "🔴 🆕 500 POST /payments/{payment_id} · shop · production",
        "🟢 500 POST /payments/{payment_id}",
    ]
    assert [card_full_title(card).split(": quiet")[0] for card in orders] == [
        "🟠 🆕 422 POST /orders/{order_id} · shop · production",
        "🟢 422 POST /orders/{order_id}",
    ]


def test_the_relay_sends_no_recovered_cards_it_has_its_own_resolved_ones() -> None:
    from lark_alert_middleware._sources.relay.app import relay_settings

    settings = load_settings(relay_token="t" * 16, recovery_after=600)
    assert relay_settings(settings).recovery_after is None
