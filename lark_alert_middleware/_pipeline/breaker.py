"""When Redis fails: stop asking for a while, ask again later, and say so once per outage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import MovedError, RedisClusterException, RedisError

logger = logging.getLogger("lark_alert_middleware")

T = TypeVar("T")

# What a failing or unreachable Redis raises through redis.asyncio; a cluster's client also
# raises RedisClusterException (not a RedisError), e.g. while a slot has no master.
REDIS_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


def _failure_reason(error: BaseException) -> str:
    """The error's type, and the fix when it is a topology mismatch rather than an outage."""
    reason = type(error).__name__
    if isinstance(error, MovedError) or str(error).startswith("MOVED "):
        return f"{reason}: REDIS_URL names a node of a Redis Cluster; set LARK_ALERT_REDIS_CLUSTER=true"
    if isinstance(error, RedisClusterException) and "not enabled" in str(error):
        return f"{reason}: LARK_ALERT_REDIS_CLUSTER is set but REDIS_URL's server is not in cluster mode"
    return reason


class CircuitBreaker:
    """Open after a failure for `pause` seconds (doubling while failures go on, up to `max_pause`).

    While open, callers use their in-process fallback without touching Redis; when the pause
    is over, calls go to Redis again. The outage ends once Redis has answered every call for
    `pause` seconds: a cluster failing over answers for some slots before it answers for all,
    and that is still one outage. One warning when an outage starts, one when it ends.
    """

    def __init__(self, timeout: float, pause: float = 2.0, max_pause: float = 30.0) -> None:
        self._timeout = timeout
        self._first_pause = pause
        self._max_pause = max_pause
        self._pause = pause
        self._closed_at = 0.0
        self._answering_since: float | None = None  # in an outage: since when no call has failed
        self.in_outage = False
        self.outages = 0

    async def call(self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """`primary()` (a Redis call) within the timeout while Redis is up; otherwise `fallback()`."""
        if self.allows():
            try:
                result = await asyncio.wait_for(primary(), self._timeout)
            except REDIS_FAILURES as error:
                self.failed(error)
            else:
                self.succeeded()
                return result
        return await fallback()

    def allows(self) -> bool:
        return not self.in_outage or time.monotonic() >= self._closed_at

    def failed(self, error: BaseException) -> None:
        self._answering_since = None
        if not self.in_outage:
            self.in_outage = True
            self.outages += 1
            self._pause = self._first_pause
            logger.warning(
                "lark_alert_middleware: Redis is unreachable (%s); deduplicating and rate-limiting in "
                "this process until it is back (alerts keep flowing, at most one per process per window)",
                _failure_reason(error),
            )
        else:
            self._pause = min(self._pause * 2, self._max_pause)
        self._closed_at = time.monotonic() + self._pause

    def succeeded(self) -> None:
        if not self.in_outage:
            return
        now = time.monotonic()
        if self._answering_since is None:
            self._answering_since = now
        if now - self._answering_since >= self._first_pause:
            self.in_outage = False
            self._answering_since = None
            logger.warning("lark_alert_middleware: Redis is reachable again; fleet-wide dedup resumed")
