"""The fleet's steward: what must happen once per service and environment, not once per replica.

One replica holds a lease in Redis (`SET NX PX`, renewed by its holder every check) and, while
it holds it, sweeps for errors that were carded and have been quiet for the recovery span. If
it stops, the lease expires and another replica takes over within a few checks. Without Redis,
or while it is down, every process is its own steward, over what it saw itself.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Protocol, cast

import redis.asyncio as redis_asyncio

from .._records import Recovery
from .breaker import CircuitBreaker
from .dedup import InProcessDedupStore, fleet_redis_key
from .scripts import Script, run_script

# Errors one sweep may find recovered; the rest wait for the next sweep.
SWEEP_LIMIT = 100

# KEYS: the lease. ARGV: this replica's name, lease milliseconds. 1 while this replica holds it.
_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


class Steward(Protocol):
    async def lead(self, fleet: str, seconds: float) -> bool:
        """Whether this replica is the fleet's steward for the next `seconds` (taken or renewed)."""
        ...

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        """Errors carded and quiet for `quiet_seconds` now, each found once (and then forgotten)."""
        ...


def replica_name() -> str:
    """This process, as the lease names its holder: host, process, and a random part (a forked
    child makes its own steward, so it never holds its parent's lease)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisSteward:
    _lease = Script.of(_LEASE_SCRIPT)

    def __init__(self, client: redis_asyncio.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._name = replica_name()

    async def lead(self, fleet: str, seconds: float) -> bool:
        lease = fleet_redis_key(self._prefix, fleet, "steward")
        [held] = await run_script(self._client, self._lease, [([lease], [self._name, int(seconds * 1000)])])
        return bool(held)

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        firing = fleet_redis_key(self._prefix, fleet, "firing")
        quiet_since = now - quiet_seconds
        quiet = await self._client.zrangebyscore(firing, "-inf", quiet_since, start=0, num=SWEEP_LIMIT)
        keys = [_text(key) for key in cast("list[bytes]", quiet)]
        if not keys:
            return []
        async with self._client.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.hmget(
                    f"{self._prefix}{{{key}}}:seen",
                    ["fingerprint", "severity", "episode_started", "last", "episode_total"],
                )
            memories = await pipeline.execute()
        found: list[Recovery] = []
        async with self._client.pipeline(transaction=False) as pipeline:
            for key, (fingerprint, severity, started, last, count) in zip(keys, memories, strict=True):
                if last is not None and float(last) > quiet_since:
                    pipeline.zadd(firing, {key: float(last)}, xx=True, gt=True)  # seen since: not yet
                    continue
                pipeline.zrem(firing, key)
                if last is not None:  # forgotten errors are dropped without a card
                    found.append(
                        Recovery(
                            key,
                            _text(fingerprint or b""),
                            _text(severity or b"error"),
                            float(started or last),
                            float(last),
                            int(count or 0),
                        )
                    )
            removed = await pipeline.execute()
        # One command per key, in order: a ZREM answers 1 only for the sweep that removed it (a
        # steward taking over meanwhile may sweep too), a ZADD of an error seen since answers 0.
        removed_keys = {key for key, reply in zip(keys, removed, strict=True) if reply}
        return [recovery for recovery in found if recovery.key in removed_keys]


class InProcessSteward:
    """Every process its own steward, over the errors its in-process store remembers."""

    def __init__(self, store: InProcessDedupStore) -> None:
        self._store = store

    async def lead(self, fleet: str, seconds: float) -> bool:
        return True

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        return self._store.recovered(quiet_seconds, now, SWEEP_LIMIT)


class FallbackSteward:
    """The fleet's steward while Redis answers; this process alone while the breaker is open."""

    def __init__(self, primary: Steward, fallback: Steward, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self._breaker = breaker

    async def lead(self, fleet: str, seconds: float) -> bool:
        return await self._breaker.call(
            lambda: self._primary.lead(fleet, seconds), lambda: self._fallback.lead(fleet, seconds)
        )

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        return await self._breaker.call(
            lambda: self._primary.recovered(fleet, quiet_seconds, now),
            lambda: self._fallback.recovered(fleet, quiet_seconds, now),
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
