"""Lark's rate budget: per process, and shared by every replica through Redis."""

from __future__ import annotations

import time

import anyio
import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lark_alert_middleware._lark.limits import InProcessRateBudget, RateLimits, wait_for_budget
from lark_alert_middleware._pipeline.breaker import CircuitBreaker
from lark_alert_middleware._pipeline.budget import FallbackRateBudget, RedisRateBudget

from .conftest import SHARED_REDIS_URL, RedisServer

pytestmark = pytest.mark.anyio
QUICK = RateLimits(per_second=3, second_window=0.5, per_minute=5, minute_window=2.0)


async def test_in_process_budget_allows_five_then_says_how_long_to_wait() -> None:
    budget = InProcessRateBudget()
    waits = [await budget.reserve() for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert all(0 < wait <= 2.0 for wait in waits[5:])


async def test_in_process_budget_enforces_the_per_minute_limit() -> None:
    budget = InProcessRateBudget(QUICK)
    granted = 0
    with anyio.fail_after(5):
        while granted < 5:
            await wait_for_budget(budget)
            granted += 1
    wait = await budget.reserve()
    assert 0 < wait <= 2.0  # five in the "minute" window: the sixth waits for the oldest to age out


async def test_replicas_share_one_budget_through_redis(redis_prefix: str) -> None:
    clients = [redis_asyncio.Redis.from_url(SHARED_REDIS_URL) for _ in range(3)]
    replicas = [RedisRateBudget(client, redis_prefix, "http://hook/one", QUICK) for client in clients]
    waits = [await replicas[index % 3].reserve() for index in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(wait > 0 for wait in waits[3:])
    other_webhook = RedisRateBudget(clients[0], redis_prefix, "http://hook/two", QUICK)
    assert await other_webhook.reserve() == 0.0  # budgets are per webhook
    for client in clients:
        await client.aclose()


async def test_waiting_for_the_budget_spaces_posts_across_replicas(redis_prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    replicas = [RedisRateBudget(client, redis_prefix, "http://hook", QUICK) for _ in range(2)]
    granted_at: list[float] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for index in range(5):
                group.start_soon(lambda i=index: _reserve_and_note(replicas[i % 2], granted_at))
    granted_at.sort()
    # Never more than three within any half second (the QUICK per-second limit).
    assert all(granted_at[i + 3] - granted_at[i] >= 0.45 for i in range(len(granted_at) - 3))
    await client.aclose()


async def _reserve_and_note(budget: RedisRateBudget, granted_at: list[float]) -> None:
    await wait_for_budget(budget)
    granted_at.append(time.monotonic())


async def test_budget_falls_back_to_the_process_when_redis_is_down(own_redis: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(
        own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    breaker = CircuitBreaker(timeout=0.4, pause=0.05, max_pause=0.05)
    budget = FallbackRateBudget(
        RedisRateBudget(client, "t:", "http://hook", QUICK), InProcessRateBudget(QUICK), breaker
    )
    own_redis.kill()
    waits = [await budget.reserve() for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 0
    assert breaker.in_outage
    await client.aclose()


async def test_a_replica_at_the_limit_waits_without_asking_redis(own_redis: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(own_redis.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    budget = RedisRateBudget(client, "t:", "http://hook", QUICK)
    other_replica = RedisRateBudget(client, "t:", "http://hook", QUICK)
    assert [await budget.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    told_by_redis = await other_replica.reserve()
    own_redis.kill()
    known_here = await budget.reserve()  # Redis is gone: this answer cannot have come from it
    assert 0 < told_by_redis <= QUICK.second_window
    assert 0 < known_here <= told_by_redis + 0.01  # the same end of the window (Redis counts in ms)
    await client.aclose()
