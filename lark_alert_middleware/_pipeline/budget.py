"""Lark's rate budget shared by the whole fleet: one sliding window per webhook, in Redis.

The window lives in one sorted set per webhook and is checked and updated by one script, timed
by the Redis server's clock, so all replicas share one budget. While Redis is failing, each
process keeps its own window (`_lark.limits`).
"""

from __future__ import annotations

import time
import uuid

from .._lark.limits import LARK_LIMITS, MINIMUM_WAIT, RateBudget, RateLimits
from .breaker import CircuitBreaker
from .redis_client import RedisClient
from .redis_keys import rate_key

# KEYS: the webhook's sorted set of post times (ms, Redis clock; `rate_key`).
# ARGV: per-second limit, second window ms, per-minute limit, minute window ms, unique member.
# Returns {ms to wait before asking again, 0} or, when a post was reserved, {0, ms until the
# next one could be, if no other replica posts first}.
_RESERVE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local per_second, second_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local per_minute, minute_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - minute_ms)
local posts = redis.call('ZCARD', KEYS[1])
if posts >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {math.max(tonumber(oldest[2]) + minute_ms - now, 1), 0}
end
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - second_ms), '+inf', 'WITHSCORES')
local recent_posts = #recent / 2
if recent_posts >= per_second then
  return {math.max(tonumber(recent[2 * (recent_posts - per_second + 1)]) + second_ms - now, 1), 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], minute_ms)
local next_ms = 0
if posts + 1 >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], posts + 1 - per_minute, posts + 1 - per_minute, 'WITHSCORES')
  next_ms = tonumber(oldest[2]) + minute_ms - now
end
if recent_posts + 1 >= per_second then
  local leaving = recent_posts + 2 - per_second
  local leaves_at = now + second_ms
  if leaving <= recent_posts then
    leaves_at = tonumber(recent[2 * leaving]) + second_ms
  end
  next_ms = math.max(next_ms, leaves_at - now)
end
return {0, next_ms}
"""


class RedisRateBudget:
    """The sliding windows for every replica posting to one webhook.

    A reservation also tells how long until the next could succeed; until then this process
    waits without asking Redis (other replicas can only make the wait longer, never shorter).
    """

    def __init__(
        self, client: RedisClient, prefix: str, webhook_url: str, limits: RateLimits = LARK_LIMITS
    ) -> None:
        self._key = rate_key(prefix, webhook_url)
        self._limits = limits
        self._reserve = client.register_script(_RESERVE_SCRIPT)
        self._not_before = 0.0  # monotonic seconds

    async def reserve(self) -> float:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            return max(wait, MINIMUM_WAIT)
        limits = self._limits
        wait_ms, next_ms = await self._reserve(
            keys=[self._key],
            args=[
                limits.per_second,
                int(limits.second_window * 1000),
                limits.per_minute,
                int(limits.minute_window * 1000),
                uuid.uuid4().hex,
            ],
        )
        if int(wait_ms) == 0:
            self._not_before = time.monotonic() + int(next_ms) / 1000.0
        return int(wait_ms) / 1000.0


class FallbackRateBudget:
    """Redis's shared budget; the process's own while the breaker is open."""

    def __init__(self, primary: RateBudget, fallback: RateBudget, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self._breaker = breaker

    async def reserve(self) -> float:
        return await self._breaker.call(self._primary.reserve, self._fallback.reserve)
