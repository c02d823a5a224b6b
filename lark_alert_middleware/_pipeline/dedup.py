"""Whether an error was already reported in its window: one protocol, two stores.

With Redis, `SET <key> <now> NX EX <window>` decides: only the caller that sets the key
alerts, so every replica sharing the Redis raises one alert per error per window. Without
Redis the same decision is made in-process. Both also count the repeats that were not
reported, so the next alert can say how often the error happened since the previous one: a
claim that loses counts its own occurrence too (a replica's first of the window, or a
process that fails at start-up, restarts and fails again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import ClusterError, NoScriptError, TryAgainError

from .._records import Claim, ClaimRequest
from .breaker import CircuitBreaker
from .redis_client import RedisClient
from .redis_keys import claim_keys
from .room import make_room

# How long a repeat count and the previous alert's time are kept between windows.
HISTORY_SECONDS = 7 * 24 * 3600


class DedupStore(Protocol):
    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        """Decide a batch of claims (one Redis round trip for all of them), in order."""
        ...

    async def add_repeats(self, repeats: dict[str, int]) -> None:
        """Add repeats counted in this process to the counts the next alerts will report."""
        ...


def dedup_key(service: str, environment: str, fingerprint: str) -> str:
    """A short, safe key; service and environment keep apps sharing a Redis apart."""
    # surrogatepass: a fingerprint made from request data may hold lone surrogates.
    text = f"{service}\0{environment}\0{fingerprint}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return digest.hexdigest()


@dataclass(slots=True)
class _Entry:
    window_ends: float
    repeats: int
    last_alert_at: float | None


class InProcessDedupStore:
    """The same decisions for one process, bounded to `capacity` keys."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[str, _Entry] = {}

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        return [self._claim_one(request, now) for request in requests]

    def _claim_one(self, request: ClaimRequest, now: float) -> Claim:
        entry = self._entries.get(request.key)
        if entry is not None and entry.window_ends > now:
            entry.repeats += request.repeats_here + 1  # and this occurrence
            return Claim(False, entry.window_ends - now)
        if entry is None:
            self._make_room(now)
            entry = self._entries[request.key] = _Entry(0.0, 0, None)
        window = request.window_seconds
        claim = Claim(True, float(window), entry.repeats + request.repeats_here, entry.last_alert_at)
        entry.window_ends, entry.repeats, entry.last_alert_at = now + window, 0, now
        return claim

    async def add_repeats(self, repeats: dict[str, int]) -> None:
        for key, count in repeats.items():
            entry = self._entries.get(key)
            if entry is not None:
                entry.repeats += count

    def _make_room(self, now: float) -> None:
        if len(self._entries) >= self._capacity:
            make_room(self._entries, self._capacity, lambda entry: entry.window_ends <= now, self._drop)

    def _drop(self, key: str) -> None:
        del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# KEYS: window, repeat count, previous alert time (`claim_keys`: one hash tag, one cluster slot).
# ARGV: window seconds, now, repeats seen by the caller, history seconds. Needs Redis 6.2+.
# A losing claim adds the caller's repeats and its own occurrence to the next alert's count.
_CLAIM_SCRIPT = """
local repeats_here = tonumber(ARGV[3])
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  local repeats = tonumber(redis.call('GETDEL', KEYS[2]) or '0') + repeats_here
  local previous = redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4], 'GET')
  return {1, repeats, previous or '', 0}
end
redis.call('INCRBY', KEYS[2], repeats_here + 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {0, 0, '', redis.call('PTTL', KEYS[1])}
"""


class SlotsMoving(Exception):
    """Some claims of a batch were not decided: their slot is moving between a cluster's masters."""

    def __init__(self, claims: list[Claim | None]) -> None:
        super().__init__("claims left undecided while their slot moves")
        self.claims = claims  # None where undecided


def _slot_is_moving(reply: object) -> bool:
    """A cluster's answer while a script's slot is being resharded: its keys are split between two
    masters (TRYAGAIN), and redis-py ran out of retries (a plain ClusterError: "TTL exhausted")."""
    return isinstance(reply, TryAgainError) or type(reply) is ClusterError


class RedisDedupStore:
    """Fleet-wide decisions: one script call per claim, a batch of them in one round trip.

    On a cluster, the client's pipeline sends each node the claims of its slots, all nodes at
    once: still one round trip (each claim's three keys share a slot: `redis_keys`). While a
    slot is being resharded, its claims cannot run (their keys may be split between two masters):
    they are left undecided (`SlotsMoving`), for the caller to decide in process.
    """

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._claim_sha = hashlib.sha1(_CLAIM_SCRIPT.encode(), usedforsecurity=False).hexdigest()

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        # By hash, not through redis-py's Script in a pipeline: that asks SCRIPT EXISTS first,
        # a second round trip per batch. Redis answers NOSCRIPT only after a restart or a flush;
        # then those claims go again with the script's text (which loads it).
        replies = await self._run_claims(requests, now, by_hash=True)
        unknown = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:
            again = await self._run_claims([requests[index] for index in unknown], now, by_hash=False)
            for index, reply in zip(unknown, again, strict=True):
                replies[index] = reply
        moving = [_slot_is_moving(reply) for reply in replies]
        for reply, is_moving in zip(replies, moving, strict=True):
            if isinstance(reply, Exception) and not is_moving:
                raise reply
        if any(moving):
            raise SlotsMoving(
                [
                    None if is_moving else _claim_from(request, reply)
                    for request, reply, is_moving in zip(requests, replies, moving, strict=True)
                ]
            )
        return [_claim_from(request, reply) for request, reply in zip(requests, replies, strict=True)]

    async def _run_claims(self, requests: Sequence[ClaimRequest], now: float, *, by_hash: bool) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipeline:
            for request in requests:
                keys_and_arguments: list[str | int] = [
                    *claim_keys(self._prefix, request.key),
                    request.window_seconds,
                    f"{now:.3f}",
                    request.repeats_here,
                    HISTORY_SECONDS,
                ]
                if by_hash:
                    pipeline.evalsha(self._claim_sha, 3, *keys_and_arguments)
                else:
                    pipeline.eval(_CLAIM_SCRIPT, 3, *keys_and_arguments)
            return list(await pipeline.execute(raise_on_error=False))

    async def add_repeats(self, repeats: dict[str, int]) -> None:
        if not repeats:
            return
        async with self._client.pipeline(transaction=False) as pipeline:
            for key, count in repeats.items():
                repeats_key = claim_keys(self._prefix, key)[1]
                pipeline.incrby(repeats_key, count)
                pipeline.expire(repeats_key, HISTORY_SECONDS)
            await pipeline.execute()


def _claim_from(request: ClaimRequest, reply: list[Any]) -> Claim:
    first, repeats, previous, remaining_ms = reply
    if first:
        return Claim(True, float(request.window_seconds), int(repeats), float(previous) if previous else None)
    # PTTL is -2 when the key expired between SET and PTTL: the window is over.
    return Claim(False, max(int(remaining_ms), 0) / 1000.0)


class FallbackDedupStore:
    """Redis first; while the breaker is open (Redis failing), the in-process store."""

    def __init__(self, primary: DedupStore, fallback: DedupStore, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        return await self.breaker.call(
            lambda: self._claim_first_in_redis(requests, now), lambda: self._fallback.claim(requests, now)
        )

    async def _claim_first_in_redis(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        try:
            return await self._primary.claim(requests, now)
        except SlotsMoving as moving:  # Redis is fine: only those claims are decided here
            undecided = [
                request for request, claim in zip(requests, moving.claims, strict=True) if claim is None
            ]
            decided_here = iter(await self._fallback.claim(undecided, now))
            return [claim if claim is not None else next(decided_here) for claim in moving.claims]

    async def add_repeats(self, repeats: dict[str, int]) -> None:
        await self.breaker.call(
            lambda: self._primary.add_repeats(repeats), lambda: self._fallback.add_repeats(repeats)
        )
