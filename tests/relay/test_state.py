"""Which alerts changed state: decided atomically in Redis for every relay sharing it, in-process
without it, and in-process while it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lark_alert_middleware._pipeline.breaker import CircuitBreaker
from lark_alert_middleware._sources.relay import state as state_module
from lark_alert_middleware._sources.relay.state import (
    FallbackStateStore,
    InProcessStateStore,
    RedisStateStore,
)

from ..conftest import SHARED_REDIS_URL, RedisServer, free_port

pytestmark = pytest.mark.anyio
HOUR = 3600


def changed(answers: list[float | None]) -> list[bool]:
    """Which states the store says changed (it answers None for those)."""
    return [answer is None for answer in answers]


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    yield client
    await client.aclose()


async def test_a_state_is_new_once_then_unchanged_until_it_changes() -> None:
    store = InProcessStateStore(100)
    assert changed(await store.record([("a", "firing 1"), ("b", "firing 2")], HOUR)) == [True, True]
    assert changed(await store.record([("a", "firing 1"), ("b", "firing 2")], HOUR)) == [False, False]
    assert changed(await store.record([("a", "resolved 1"), ("b", "firing 2")], HOUR)) == [True, False]


async def test_the_same_alert_twice_in_one_batch_changes_once() -> None:
    store = InProcessStateStore(100)
    assert changed(await store.record([("a", "firing 1"), ("a", "firing 1")], HOUR)) == [True, False]


async def test_a_state_kept_past_its_time_is_new_again_and_being_seen_does_not_extend_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(state_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    store = InProcessStateStore(100)
    assert changed(await store.record([("a", "firing 1")], HOUR)) == [True]
    clock[0] += HOUR - 1
    assert await store.record([("a", "firing 1")], HOUR) == [1.0]
    clock[0] += 2
    assert changed(await store.record([("a", "firing 1")], HOUR)) == [True]  # a reminder


async def test_the_in_process_store_stays_within_its_capacity() -> None:
    store = InProcessStateStore(10)
    for index in range(100):
        await store.record([(f"k{index}", "firing 1")], HOUR)
    assert len(store) <= 10


async def test_redis_decides_for_every_store_sharing_it(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    one, other = RedisStateStore(redis_client, redis_prefix), RedisStateStore(redis_client, redis_prefix)
    assert changed(await one.record([("a", "firing 1"), ("b", "firing 1")], HOUR)) == [True, True]
    assert changed(await other.record([("a", "firing 1"), ("b", "resolved 1")], HOUR)) == [False, True]
    assert changed(await one.record([("b", "resolved 1")], HOUR)) == [False]


async def test_redis_keeps_a_state_from_when_it_was_recorded_not_last_seen(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisStateStore(redis_client, redis_prefix)
    assert await store.record([("a", "firing 1")], HOUR) == [None]
    [key] = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    await redis_client.expire(key, 100)  # as if recorded long ago
    [kept_for] = await store.record([("a", "firing 1")], HOUR)
    assert kept_for is not None and 99 < kept_for <= 100  # unchanged: how long it is still kept
    assert 0 < await redis_client.ttl(key) <= 100


async def test_redis_decides_batches_larger_than_one_script_call(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisStateStore(redis_client, redis_prefix)
    states = [(f"k{index}", "firing 1") for index in range(state_module.SCRIPT_BATCH * 2 + 7)]
    assert changed(await store.record(states, HOUR)) == [True] * len(states)
    updated = [(key, "resolved 1" if index % 3 == 0 else state) for index, (key, state) in enumerate(states)]
    assert changed(await store.record(updated, HOUR)) == [index % 3 == 0 for index in range(len(states))]


async def test_redis_loads_the_script_again_after_a_flush(own_redis: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(own_redis.url)
    try:
        store = RedisStateStore(client, "x:")
        assert changed(await store.record([("a", "firing 1")], HOUR)) == [True]
        await client.script_flush()  # what a restart does
        assert changed(await store.record([("a", "resolved 1")], HOUR)) == [True]
    finally:
        await client.aclose()


async def test_while_redis_is_unreachable_the_process_decides() -> None:
    unreachable = redis_asyncio.Redis(
        port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    breaker = CircuitBreaker(timeout=0.5)
    store = FallbackStateStore(RedisStateStore(unreachable, "x:"), InProcessStateStore(100), breaker)
    try:
        assert changed(await store.record([("a", "firing 1")], HOUR)) == [True]
        assert changed(await store.record([("a", "firing 1")], HOUR)) == [False]
        assert breaker.in_outage
    finally:
        await unreachable.aclose()
