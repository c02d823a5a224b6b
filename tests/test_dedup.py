"""Dedup stores against a real Redis: one alert per error per window, wherever it happens."""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest
import redis
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import lark_alert_middleware
from lark_alert_middleware._pipeline.breaker import CircuitBreaker
from lark_alert_middleware._pipeline.clients import SharedClients
from lark_alert_middleware._pipeline.dedup import (
    FallbackDedupStore,
    InProcessDedupStore,
    RedisDedupStore,
    dedup_key,
)
from lark_alert_middleware._records import NO_TRACKING, Claim, ClaimRequest, RepeatCount, Tracking

from .conftest import SHARED_REDIS_URL, RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    yield client
    await client.aclose()


async def test_in_process_store_claims_once_per_window_and_counts_repeats() -> None:
    store = InProcessDedupStore(capacity=100)
    first = (await store.claim([ClaimRequest("k", 60, 0)], now=1000.0))[0]
    assert first.first and first.repeats == 0 and first.previous_alert_at is None
    again = (await store.claim([ClaimRequest("k", 60, 4)], now=1010.0))[0]
    assert not again.first and again.remaining_seconds == pytest.approx(50.0)
    after = (await store.claim([ClaimRequest("k", 60, 1)], now=1061.0))[0]
    assert after.first
    assert after.repeats == 6  # the losing claim's 4 repeats and its own occurrence, and 1 more
    assert after.previous_alert_at == 1000.0


async def test_in_process_store_is_bounded() -> None:
    store = InProcessDedupStore(capacity=10)
    for index in range(1000):
        await store.claim([ClaimRequest(f"k{index}", 60, 0)], now=1000.0)
    assert len(store) <= 10


async def test_redis_store_lets_exactly_one_replica_claim(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    replicas = [
        RedisDedupStore(redis_asyncio.Redis.from_url(SHARED_REDIS_URL), redis_prefix) for _ in range(4)
    ]
    claims = [(await replica.claim([ClaimRequest("key-1", 60, 0)], now=1000.0))[0] for replica in replicas]
    assert [claim.first for claim in claims] == [True, False, False, False]
    assert all(55 < claim.remaining_seconds <= 60 for claim in claims[1:])
    ttl = await redis_client.ttl(f"{redis_prefix}{{key-1}}:window")
    assert 55 < ttl <= 60
    for replica in replicas:
        await replica._client.aclose()


async def test_redis_store_reports_repeats_from_every_replica_in_the_next_alert(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_client, redis_prefix)
    assert ((await store.claim([ClaimRequest("key-2", 1, 0)], now=1000.0))[0]).first
    assert not (
        (await store.claim([ClaimRequest("key-2", 1, 3)], now=1000.2))[0]
    ).first  # another replica's repeats
    await store.add_repeats([RepeatCount("key-2", 2)], now=1000.5)
    await redis_client.delete(f"{redis_prefix}{{key-2}}:window")  # the window ends
    claim = (await store.claim([ClaimRequest("key-2", 1, 1)], now=1002.0))[0]
    assert claim.first
    assert claim.repeats == 7  # 3 and the losing claim's own occurrence, 2, 1
    assert claim.previous_alert_at == pytest.approx(1000.0)


async def test_a_process_that_fails_once_per_restart_is_counted_in_the_next_alert(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    # Each restart is a new process: one occurrence, nothing counted before it, one claim.
    restarts = [RedisDedupStore(redis_client, redis_prefix) for _ in range(4)]
    claims = [(await store.claim([ClaimRequest("boot", 60, 0)], now=1000.0))[0] for store in restarts[:3]]
    assert [claim.first for claim in claims] == [True, False, False]
    await redis_client.delete(f"{redis_prefix}{{boot}}:window")  # the window ends
    claim = (await restarts[3].claim([ClaimRequest("boot", 60, 0)], now=1100.0))[0]
    assert claim.first and claim.repeats == 2


async def test_in_process_store_counts_a_losing_claim_as_an_occurrence() -> None:
    store = InProcessDedupStore(capacity=10)
    assert (await store.claim([ClaimRequest("boot", 60, 0)], now=1000.0))[0].first
    assert not (await store.claim([ClaimRequest("boot", 60, 0)], now=1001.0))[0].first
    assert (await store.claim([ClaimRequest("boot", 60, 0)], now=1061.0))[0].repeats == 1


async def test_a_batch_of_claims_is_decided_in_one_round_trip_in_order(
    redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    store = RedisDedupStore(redis_client, redis_prefix)
    batch = [ClaimRequest(key, 60, 0) for key in ("x", "y", "x", "z", "y")]
    claims = await store.claim(batch, now=1000.0)
    assert [claim.first for claim in claims] == [True, True, False, True, False]


async def test_claims_cost_one_round_trip_and_survive_a_flush_of_scripts(own_redis: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(own_redis.url)
    try:
        store = RedisDedupStore(client, "t:")
        assert [c.first for c in await store.claim([ClaimRequest("warm", 60, 0)], now=1000.0)] == [True]
        await client.config_resetstat()
        batch = [ClaimRequest(key, 60, 0) for key in ("x", "y", "x")]
        assert [c.first for c in await store.claim(batch, now=1000.0)] == [True, True, False]
        commands = await client.info("commandstats")
        # Three script calls by hash in one pipeline; no SCRIPT EXISTS first, no second round trip.
        assert commands["cmdstat_evalsha"]["calls"] == 3
        assert "cmdstat_script" not in commands and "cmdstat_eval" not in commands
        await client.script_flush()  # as after a restart: Redis no longer knows the script
        assert [c.first for c in await store.claim(batch, now=1000.0)] == [False, False, False]
        assert [c.first for c in await store.claim([ClaimRequest("new", 60, 0)], now=1000.0)] == [True]
        assert (await client.info("commandstats"))["cmdstat_eval"]["calls"] == 3  # sent again, once
    finally:
        await client.aclose()


async def test_keys_are_separate_per_service_and_environment() -> None:
    assert dedup_key("a", "prod", "GET / 500") != dedup_key("b", "prod", "GET / 500")
    assert dedup_key("a", "prod", "GET / 500") != dedup_key("a", "staging", "GET / 500")


async def test_fallback_store_survives_a_redis_outage_and_resumes(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis_asyncio.Redis.from_url(
        own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    store = FallbackDedupStore(
        RedisDedupStore(client, "t:"),
        InProcessDedupStore(100),
        CircuitBreaker(timeout=0.4, pause=0.05, max_pause=0.05),
    )
    assert ((await store.claim([ClaimRequest("a", 60, 0)], now=1000.0))[0]).first
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"):
        outage_claims = [(await store.claim([ClaimRequest("b", 60, 0)], now=1000.0))[0] for _ in range(20)]
        assert [claim.first for claim in outage_claims].count(True) == 1  # in-process dedup meanwhile
        assert store.breaker.in_outage
        own_redis.start()
        recovered = None
        with anyio.fail_after(10):
            # Poll: a probe every 50 ms; the outage ends after 50 ms of Redis answering every call.
            for attempt in itertools.count():
                recovered = (await store.claim([ClaimRequest(f"c{attempt}", 60, 0)], now=1000.0))[0]
                if not store.breaker.in_outage:
                    break
                await anyio.sleep(0.01)
    assert recovered is not None and recovered.first
    assert await client.exists(f"t:{{c{attempt}}}:window") == 1  # the claim went to Redis again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("Redis is unreachable" in message for message in warnings) == 1
    assert sum("reachable again" in message for message in warnings) == 1
    await client.aclose()


class CountedRedisStore(RedisDedupStore):
    """The real store, counting the claims that went to Redis."""

    calls = 0

    async def claim(
        self, requests: Sequence[ClaimRequest], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Claim]:
        self.calls += 1
        return await super().claim(requests, now, tracking)


async def test_a_hung_redis_costs_one_timeout_then_the_breaker_keeps_claims_away(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = SharedClients().redis(own_redis.url, timeout=0.2)  # as the alerter configures it
    primary = CountedRedisStore(client, "t:")
    store = FallbackDedupStore(primary, InProcessDedupStore(100), CircuitBreaker(timeout=0.4, pause=60))
    assert (await store.claim([ClaimRequest("a", 60, 0)], now=1000.0))[0].first
    own_redis.freeze()
    try:
        with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"), anyio.fail_after(10):
            claims = [(await store.claim([ClaimRequest("b", 60, 0)], now=1000.0))[0] for _ in range(50)]
    finally:
        own_redis.thaw()
    assert [claim.first for claim in claims].count(True) == 1  # decided in-process meanwhile
    # The first claim, and the one that timed out: the other 49 never waited on Redis.
    assert primary.calls == 2 and store.breaker.in_outage
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis is unreachable (TimeoutError)" in warnings[0]
    await client.aclose()


@pytest.mark.skipif(not hasattr(redis, "DriverInfo"), reason="redis-py without DriverInfo (before 7.2)")
async def test_new_redis_connections_share_one_description_of_this_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = SharedClients().redis(SHARED_REDIS_URL, 1.0)
    lookups: list[str] = []
    look_up = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: lookups.append(name) or look_up(name))
    connections = [client.connection_pool.make_connection() for _ in range(3)]
    # Named for CLIENT SETINFO (Redis 7.2+), and not looked up in package metadata per connection.
    assert {connection.driver_info.formatted_name for connection in connections} == {
        f"redis-py(lark-alert-middleware_v{lark_alert_middleware.__version__})"
    }
    assert lookups == []
    await client.aclose()
