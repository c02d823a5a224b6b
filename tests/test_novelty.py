"""New, back or ongoing: what the fleet remembers of an error, and what its next card says."""

from __future__ import annotations

import time

import pytest
import redis
import redis.asyncio as redis_asyncio

from lark_alert_middleware import ConfigurationError
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.dedup import InProcessDedupStore, RedisDedupStore, dedup_key
from lark_alert_middleware._records import BACK, NEW, ONGOING, ClaimRequest, RepeatCount
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import (
    QUICK_MEMORY,
    SHARED_REDIS_URL,
    StoreFactory,
    card_full_title,
    client_for,
    end_window,
    shown_text,
    wait_until,
)

pytestmark = pytest.mark.anyio


def claim(key: str, repeats_here: int = 0, window: int = 10) -> list[ClaimRequest]:
    return [ClaimRequest(key, window, repeats_here, "GET /x 500", "error")]


async def test_an_error_never_seen_is_new(replicas: StoreFactory) -> None:
    [first] = await replicas().claim(claim("k"), now=1000.0)
    assert first.history is not None
    assert (first.history.novelty, first.history.last_seen_at, first.history.total) == (NEW, None, 1)


async def test_an_error_seen_within_the_regression_span_is_ongoing_and_counted_in_total(
    replicas: StoreFactory,
) -> None:
    one, two = replicas(), replicas()
    await one.claim(claim("k"), now=1000.0)
    await two.claim(claim("k", repeats_here=2), now=1001.0)  # lost: 3 occurrences
    await one.add_repeats([RepeatCount("k", 4)], now=1005.0)
    await end_window(one, "k")
    [again] = await one.claim(claim("k", repeats_here=1), now=1030.0)
    assert again.first and again.history is not None
    assert again.history.novelty == ONGOING
    assert again.history.last_seen_at == pytest.approx(1005.0)  # the repeats handed over then
    assert again.history.first_seen_at == pytest.approx(1000.0)
    assert again.history.total == 1 + 3 + 4 + 2


async def test_an_error_quiet_for_the_regression_span_is_back(replicas: StoreFactory) -> None:
    store = replicas()
    await store.claim(claim("k"), now=1000.0)
    await end_window(store, "k")
    [back] = await store.claim(claim("k"), now=1000.0 + 3 * 60)
    assert back.history is not None
    assert (back.history.novelty, back.history.last_seen_at, back.history.total) == (BACK, 1000.0, 2)
    await end_window(store, "k")
    [after] = await store.claim(claim("k"), now=1000.0 + 3 * 60 + 20)
    assert after.history is not None and after.history.novelty == ONGOING


async def test_errors_are_remembered_apart(replicas: StoreFactory) -> None:
    store = replicas()
    await store.claim(claim("a"), now=1000.0)
    [other] = await store.claim(claim("b"), now=1000.0)
    assert other.history is not None and other.history.novelty == NEW


async def test_the_in_process_store_forgets_an_error_after_the_memory_span() -> None:
    store = InProcessDedupStore(100, QUICK_MEMORY)
    await store.claim(claim("k"), now=1000.0)
    [again] = await store.claim(claim("k"), now=1000.0 + 3601)
    assert again.history is not None and again.history.novelty == NEW and again.history.total == 1


async def test_redis_keeps_one_small_expiring_hash_per_error(redis_prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL, decode_responses=True)
    try:
        store = RedisDedupStore(client, redis_prefix, QUICK_MEMORY)
        await store.claim(claim("k"), now=1000.0)
        seen = f"{redis_prefix}{{k}}:seen"
        assert await client.hgetall(seen) == {
            "first": "1000.000",
            "last": "1000.000",
            "total": "1",
            "name": "GET /x 500",
            "severity": "error",
            "episode_total": "1",  # how often since the error was last quiet (for its recovered card)
            "to": "",  # the destinations of its cards (for its recovered card)
        }
        assert 3590 < await client.ttl(seen) <= 3600
    finally:
        await client.aclose()


def test_the_regression_span_must_be_shorter_than_the_memory() -> None:
    assert load_settings(memory_days=2, regression_after=3600).regression_after == 3600
    with pytest.raises(
        ConfigurationError, match=r"LARK_ALERT_REGRESSION_AFTER.*shorter than LARK_ALERT_MEMORY_DAYS"
    ):
        load_settings(memory_days=1, regression_after=86400)


async def test_a_first_card_says_new_and_the_next_one_after_the_window_says_repeated(
    lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    app = failing_app(
        webhook_url=lark_receiver.url, redis_url=SHARED_REDIS_URL, redis_key_prefix=redis_prefix, rate_limit=1
    )
    window = (
        f"{redis_prefix}{{{dedup_key('orders', 'production', 'GET /boom/{kind} 500 ValueError')}}}:window"
    )
    async with client_for(app) as client:
        for _ in range(4):
            assert (await client.get("/boom/value")).status_code == 500
        [new] = lark_receiver.wait_for_cards(1)
        wait_until(lambda: not _exists(window), what="the window to end")
        assert (await client.get("/boom/value")).status_code == 500
        _, ongoing = lark_receiver.wait_for_cards(2)
    assert card_full_title(new) == "🔴 🆕 500 GET /boom/{kind} · orders · production"
    assert "**🆕 New**: not seen in the last 14 days" in shown_text(new)
    assert card_full_title(ongoing) == "🔴 500 GET /boom/{kind} · orders · production"
    assert "**Repeated 3 times** since the previous alert at " in shown_text(ongoing)
    assert "New" not in shown_text(ongoing) and "Back" not in shown_text(ongoing)


async def test_an_error_quiet_for_longer_than_the_regression_span_comes_back_with_its_history(
    lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    app = failing_app(
        webhook_url=lark_receiver.url,
        redis_url=SHARED_REDIS_URL,
        redis_key_prefix=redis_prefix,
        rate_limit=1,
        regression_after=1,
    )
    async with client_for(app) as client:
        assert (await client.get("/conflict")).status_code == 409
        lark_receiver.wait_for_cards(1)
        first_seen = time.time()
        wait_until(lambda: time.time() > first_seen + 1.2, what="a quiet spell")  # time is the subject
        assert (await client.get("/conflict")).status_code == 409
        _, back = lark_receiver.wait_for_cards(2)
    assert card_full_title(back) == "🟠 🔁 409 GET /conflict · orders · production"
    text = shown_text(back)
    assert "**🔁 Back after 1 s**: last seen 20" in text
    assert ", 2 times in all since 20" in text


def _exists(key: str) -> bool:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        return bool(client.exists(key))
    finally:
        client.close()
