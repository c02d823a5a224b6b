"""Whether an error was already reported in its window: one protocol, two stores.

With Redis, `SET <key> <now> NX EX <window>` decides: only the caller that sets the key
alerts, so every replica sharing the Redis raises one alert per error per window. Without
Redis the same decision is made in-process. Both also count the repeats that were not
reported, so the next alert can say how often the error happened since the previous one (a
claim that loses counts its own occurrence too: a replica's first of the window, or a process
that fails at start-up, restarts and fails again), and remember each error (`memory.py`), so
that its next card can say whether it is new or back.
With recovery on, they track the errors still firing, for the steward's sweep; with the daily
summary on, how often each error happened in the summary's period (`Tracking`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import ClusterError, TryAgainError

from .._records import (
    NEW,
    NO_TRACKING,
    Claim,
    ClaimRequest,
    Crossing,
    History,
    Recovery,
    RepeatCount,
    Thresholds,
    Tracking,
)
from .breaker import CircuitBreaker
from .memory import DEFAULT_MEMORY, Memory, Remembered, remember
from .redis_client import RedisClient
from .redis_keys import claim_keys, day_key, fleet_key, repeats_keys
from .room import make_room
from .scripts import Alongside, Script, ScriptCall, run_script

# How long a repeat count and the previous alert's time are kept between windows.
HISTORY_SECONDS = 7 * 24 * 3600
# How long a summary period's counts are kept after it ended: a fleet down when the summary was
# due sends it when it is back, this long at most.
DAY_KEPT_SECONDS = 2 * 24 * 3600
# Summary periods counted in-process (the current one, and those not yet summarised).
DAYS_KEPT = 3


class DedupStore(Protocol):
    async def claim(
        self, requests: Sequence[ClaimRequest], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Claim]:
        """Decide a batch of claims (one Redis round trip for all of them), in order."""
        ...

    async def add_repeats(
        self, counts: Sequence[RepeatCount], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Crossing]:
        """Add repeats counted in this process to the counts the next alerts will report, and say
        which thresholds the counts inside open windows crossed, each to one caller only."""
        ...


def dedup_key(service: str, environment: str, fingerprint: str) -> str:
    """A short, safe key; service and environment keep apps sharing a Redis apart."""
    # surrogatepass: a fingerprint made from request data may hold lone surrogates.
    text = f"{service}\0{environment}\0{fingerprint}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return digest.hexdigest()


def fleet_of(service: str, environment: str) -> str:
    """The key of what a service and environment keep besides each error's own (see `Tracking`)."""
    text = f"{service}\0{environment}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def reached_threshold(counts: tuple[int, ...], count: int) -> int:
    """The highest of `counts` that `count` reached; 0 for none."""
    return max((threshold for threshold in counts if threshold <= count), default=0)


@dataclass(slots=True)
class _Entry:
    window_ends: float
    repeats: int
    last_alert_at: float | None
    escalated: dict[int, int] | None = None  # the highest threshold announced per destination
    remembered: Remembered | None = None
    firing: bool = False  # carded, and not yet found recovered


@dataclass(slots=True)
class Day:
    """One summary period's counts in-process: per error (bounded), new errors, all errors."""

    counts: dict[str, int] = field(default_factory=dict)
    new: set[str] = field(default_factory=set)
    total: int = 0
    watched_since: float | None = None
    sent: bool = False


class InProcessDedupStore:
    """The same decisions for one process, bounded to `capacity` keys."""

    def __init__(self, capacity: int, memory: Memory = DEFAULT_MEMORY) -> None:
        self._capacity = capacity
        self._memory = memory
        self._entries: dict[str, _Entry] = {}
        self._days: dict[float, Day] = {}

    async def claim(
        self, requests: Sequence[ClaimRequest], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Claim]:
        return [self._claim_one(request, now, tracking) for request in requests]

    def _claim_one(self, request: ClaimRequest, now: float, tracking: Tracking) -> Claim:
        entry = self._entries.get(request.key)
        occurrences = request.repeats_here + 1
        if entry is not None and entry.window_ends > now:
            entry.repeats += occurrences  # this occurrence is a repeat too
            if entry.remembered is not None:
                entry.remembered.seen(occurrences, now)
            entry.firing = entry.firing or bool(tracking.recovery_after)
            self._count_day(tracking, request.key, occurrences)
            return Claim(False, entry.window_ends - now)
        if entry is None:
            self._make_room(now)
            entry = self._entries[request.key] = _Entry(0.0, 0, None)
        claimed = (request.name, request.severity, occurrences, request.destinations)
        entry.remembered, history = remember(
            entry.remembered, self._memory, claimed, now, tracking.recovery_after
        )
        entry.firing = bool(tracking.recovery_after)
        self._count_day(tracking, request.key, occurrences, new=history.novelty == NEW)
        window = request.window_seconds
        repeats = entry.repeats + request.repeats_here
        claim = Claim(True, float(window), repeats, entry.last_alert_at, history)
        entry.window_ends, entry.repeats, entry.last_alert_at, entry.escalated = now + window, 0, now, None
        return claim

    async def add_repeats(
        self, counts: Sequence[RepeatCount], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Crossing]:
        crossings = []
        for count in counts:
            entry = self._entries.get(count.key)
            if entry is None:
                continue
            entry.repeats += count.repeats
            if entry.remembered is not None:
                entry.remembered.seen(count.repeats, now)
            self._count_day(tracking, count.key, count.repeats)
            if entry.window_ends > now and entry.last_alert_at is not None:
                crossings += self._crossings(count, entry, entry.last_alert_at)
        return crossings

    @staticmethod
    def _crossings(count: RepeatCount, entry: _Entry, window_started_at: float) -> list[Crossing]:
        in_window = entry.repeats + 1
        crossings = []
        for thresholds in count.thresholds:
            reached = reached_threshold(thresholds.counts, in_window)
            announced = entry.escalated or {}
            before = announced.get(thresholds.destination, 0)
            if reached > before:
                entry.escalated = {**announced, thresholds.destination: reached}
                crossings.append(
                    Crossing(count.key, thresholds.destination, reached, in_window, window_started_at, before)
                )
        return crossings

    def _count_day(self, tracking: Tracking, key: str, occurrences: int, *, new: bool = False) -> None:
        if not tracking.summary_due:
            return
        day = self.day(tracking.summary_due)
        day.total += occurrences
        if key in day.counts or len(day.counts) < self._capacity:  # past it, errors are only counted
            day.counts[key] = day.counts.get(key, 0) + occurrences
            if new:
                day.new.add(key)

    def day(self, due: float) -> Day:
        """The counts of the summary period that ends at `due`."""
        day = self._days.get(due)
        if day is None:
            for old in sorted(self._days)[: max(0, len(self._days) - DAYS_KEPT + 1)]:
                del self._days[old]
            day = self._days[due] = Day()
        return day

    def remembered(self, key: str) -> Remembered | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.remembered

    def recovered(self, quiet_seconds: int, now: float, limit: int) -> list[Recovery]:
        """Errors still firing when last looked at, quiet for `quiet_seconds` now (at most `limit`)."""
        found = []
        for key, entry in self._entries.items():
            remembered = entry.remembered
            if entry.firing and remembered is not None and now - remembered.last_seen >= quiet_seconds:
                entry.firing = False
                found.append(remembered.recovery(key))
                if len(found) >= limit:
                    break
        return found

    def _make_room(self, now: float) -> None:
        if len(self._entries) >= self._capacity:
            make_room(self._entries, self._capacity, lambda entry: entry.window_ends <= now, self._drop)

    def _drop(self, key: str) -> None:
        del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# Every script's keys share one hash tag (`redis_keys`: one cluster slot). Scripts need Redis 6.2+.
# The fleet's sorted sets (errors still firing, the summary's counts) are written by commands
# sent alongside, in the same round trip.
# KEYS: window, repeat count, previous alert time, thresholds announced, memory (a hash).
# ARGV: window seconds, now, repeats seen by the caller, history seconds, memory seconds,
# regression seconds, the error's name (see ClaimRequest), severity, recovery seconds (0: off),
# destinations ("0,2").
# A losing claim adds the caller's repeats and its own occurrence to the next alert's count.
_CLAIM_SCRIPT = """
local now, repeats_here = tonumber(ARGV[2]), tonumber(ARGV[3])
local function remember(occurrences)
  redis.call('HSETNX', KEYS[5], 'first', ARGV[2])
  redis.call('HSET', KEYS[5], 'last', ARGV[2], 'name', ARGV[7], 'severity', ARGV[8], 'to', ARGV[10])
  local total = redis.call('HINCRBY', KEYS[5], 'total', occurrences)
  redis.call('HINCRBY', KEYS[5], 'episode_total', occurrences)
  redis.call('EXPIRE', KEYS[5], ARGV[5])
  return total
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  local repeats = tonumber(redis.call('GETDEL', KEYS[2]) or '0') + repeats_here
  local previous = redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4], 'GET')
  redis.call('DEL', KEYS[4])
  local seen = redis.call('HMGET', KEYS[5], 'first', 'last', 'episode_started')
  local novelty, first, last = 'new', '', ''
  if seen[2] then
    first, last = seen[1] or seen[2], seen[2]
    novelty = 'ongoing'
    if now - tonumber(last) >= tonumber(ARGV[6]) then novelty = 'back' end
  end
  local recovery = tonumber(ARGV[9])
  if recovery > 0 and (last == '' or not seen[3] or now - tonumber(last) >= recovery) then
    redis.call('HSET', KEYS[5], 'episode_started', ARGV[2], 'episode_total', 0)
  end
  local total = remember(repeats_here + 1)
  return {1, repeats, previous or '', 0, novelty, last, first, total}
end
redis.call('INCRBY', KEYS[2], repeats_here + 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
remember(repeats_here + 1)
return {0, 0, '', redis.call('PTTL', KEYS[1])}
"""

# KEYS: window, repeat count, thresholds announced (a hash: destination -> highest announced),
# memory. ARGV: repeats, history seconds, now, memory seconds, then each destination and its
# ascending thresholds ("10,100"). Returns {} or {count in the window, window start,
# destination, threshold, the one announced before, ...} for the thresholds crossed that no
# caller was told of before.
_REPEATS_SCRIPT = """
local repeats = redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'total', ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'episode_total', ARGV[1])
  redis.call('HSET', KEYS[4], 'last', ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
if #ARGV < 5 then return {} end
local started = redis.call('GET', KEYS[1])
if not started then return {} end
local count = repeats + 1
local answer = {count, started}
for i = 5, #ARGV - 1, 2 do
  local reached = 0
  for threshold in string.gmatch(ARGV[i + 1], '%d+') do
    if tonumber(threshold) <= count then reached = tonumber(threshold) end
  end
  local before = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  if reached > before then
    redis.call('HSET', KEYS[3], ARGV[i], reached)
    answer[#answer + 1] = ARGV[i]
    answer[#answer + 1] = reached
    answer[#answer + 1] = before
  end
end
if #answer > 2 then
  redis.call('PEXPIRE', KEYS[3], math.max(redis.call('PTTL', KEYS[1]), 1))
end
return answer
"""


T = TypeVar("T")


class SlotsMoving(Exception, Generic[T]):
    """Some calls of a batch were not run: their slot is moving between a cluster's masters."""

    def __init__(self, done: list[T | None]) -> None:
        super().__init__("calls left undone while their slot moves")
        self.done = done  # None where undone


def slot_is_moving(reply: object) -> bool:
    """A cluster's answer while a script's slot is being resharded: its keys are split between two
    masters (TRYAGAIN), and redis-py ran out of retries (a plain ClusterError: "TTL exhausted")."""
    return isinstance(reply, TryAgainError) or type(reply) is ClusterError


class RedisDedupStore:
    """Fleet-wide decisions: one script call per claim, a batch of them in one round trip.

    On a cluster, the client's pipeline sends each node the calls of its slots, all nodes at
    once: still one round trip (each script's keys share a slot: `redis_keys`). While a slot is
    being resharded, its calls cannot run (their keys may be split between two masters): they
    are left undone (`SlotsMoving`), for the caller to do in process.
    """

    _claim = Script.of(_CLAIM_SCRIPT)
    _repeats = Script.of(_REPEATS_SCRIPT)

    def __init__(self, client: RedisClient, prefix: str, memory: Memory = DEFAULT_MEMORY) -> None:
        self._client = client
        self._prefix = prefix
        self._memory = memory

    async def claim(
        self, requests: Sequence[ClaimRequest], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Claim]:
        memory = self._memory
        calls: list[ScriptCall] = [
            (
                claim_keys(self._prefix, request.key),
                [
                    request.window_seconds,
                    f"{now:.3f}",
                    request.repeats_here,
                    HISTORY_SECONDS,
                    memory.seconds,
                    memory.regression_after,
                    request.name,
                    request.severity,
                    tracking.recovery_after,
                    ",".join(map(str, request.destinations)),
                ],
            )
            for request in requests
        ]
        occurrences: dict[str, int] = {}
        for request in requests:
            occurrences[request.key] = occurrences.get(request.key, 0) + request.repeats_here + 1
        alongside = self._alongside(tracking, occurrences, now, claimed=True)
        replies = await run_script(self._client, self._claim, calls, alongside, tolerated=slot_is_moving)
        claims = [
            None if slot_is_moving(reply) else _claim_from(request, reply)
            for request, reply in zip(requests, replies, strict=True)
        ]
        if tracking.summary_due:
            await self._count_new(tracking, requests, claims, now)
        return _all_done(claims)

    async def add_repeats(
        self, counts: Sequence[RepeatCount], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Crossing]:
        calls: list[ScriptCall] = []
        for count in counts:
            arguments: list[str | int] = [count.repeats, HISTORY_SECONDS, f"{now:.3f}", self._memory.seconds]
            calls.append(
                (repeats_keys(self._prefix, count.key), [*arguments, *_threshold_arguments(count.thresholds)])
            )
        occurrences = {count.key: count.repeats for count in counts}
        alongside = self._alongside(tracking, occurrences, now, claimed=False)
        replies = await run_script(self._client, self._repeats, calls, alongside, tolerated=slot_is_moving)
        crossings = [
            None if slot_is_moving(reply) else _crossings_from(count, reply)
            for count, reply in zip(counts, replies, strict=True)
        ]
        return [crossing for each in _all_done(crossings) for crossing in each]

    def _alongside(
        self, tracking: Tracking, occurrences: dict[str, int], now: float, *, claimed: bool
    ) -> Alongside | None:
        """What the fleet tracks, sent with the scripts: with recovery on, the errors' last sighting
        in the sorted set of errors still firing (claimed errors join it, repeats only move those
        in it); with the summary on, their counts in the period's sorted set."""
        if not occurrences or not (tracking.recovery_after or tracking.summary_due):
            return None
        prefix, fleet = self._prefix, tracking.fleet

        def add(pipeline: Pipeline | ClusterPipeline) -> None:
            if tracking.recovery_after:
                firing = fleet_key(prefix, fleet, "firing")
                pipeline.zadd(firing, dict.fromkeys(occurrences, now), xx=not claimed, gt=True)
                pipeline.expire(firing, self._memory.seconds)
            if tracking.summary_due:
                day = day_key(prefix, fleet, tracking.summary_due)
                for key, count in occurrences.items():
                    pipeline.zincrby(day, count, key)
                pipeline.incrby(f"{day}:total", sum(occurrences.values()))
                kept = _day_kept_seconds(tracking.summary_due, now)
                pipeline.expire(day, kept)
                pipeline.expire(f"{day}:total", kept)

        return add

    async def _count_new(
        self, tracking: Tracking, requests: Sequence[ClaimRequest], claims: list[Claim | None], now: float
    ) -> None:
        """The errors first seen in the summary's period: after the claims that said so (rare)."""
        new = [
            request.key
            for request, claim in zip(requests, claims, strict=True)
            if claim is not None and claim.history is not None and claim.history.novelty == NEW
        ]
        if new:
            day_new = f"{day_key(self._prefix, tracking.fleet, tracking.summary_due)}:new"
            async with self._client.pipeline(transaction=False) as pipeline:
                pipeline.sadd(day_new, *new)
                pipeline.expire(day_new, _day_kept_seconds(tracking.summary_due, now))
                await pipeline.execute()


def _all_done(done: list[T | None]) -> list[T]:
    """`done`, if every call was; else SlotsMoving, for the caller to do the others in process."""
    if any(each is None for each in done):
        raise SlotsMoving(done)
    return [each for each in done if each is not None]


def _day_kept_seconds(due: float, now: float) -> int:
    return max(int(due - now), 0) + DAY_KEPT_SECONDS


def _threshold_arguments(thresholds: Sequence[Thresholds]) -> list[str]:
    arguments = []
    for each in thresholds:
        arguments += [str(each.destination), ",".join(map(str, each.counts))]
    return arguments


def _claim_from(request: ClaimRequest, reply: list[Any]) -> Claim:
    first, repeats, previous, remaining_ms = reply[:4]
    if first:
        novelty, last_seen, first_seen, total = reply[4:]
        history = History(_text(novelty), _time(last_seen), _time(first_seen), int(total))
        return Claim(True, float(request.window_seconds), int(repeats), _time(previous), history)
    # PTTL is -2 when the key expired between SET and PTTL: the window is over.
    return Claim(False, max(int(remaining_ms), 0) / 1000.0)


def _crossings_from(count: RepeatCount, reply: list[Any]) -> list[Crossing]:
    if not reply:
        return []
    in_window, started = int(reply[0]), float(reply[1])
    triples = reply[2:]
    return [
        Crossing(count.key, int(destination), int(threshold), in_window, started, int(before))
        for destination, threshold, before in zip(triples[::3], triples[1::3], triples[2::3], strict=True)
    ]


def _time(value: bytes | str | None) -> float | None:
    return float(value) if value else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class FallbackDedupStore:
    """Redis first; while the breaker is open (Redis failing), the in-process store. Calls whose
    cluster slot is moving are done in process too, while Redis serves the others."""

    def __init__(self, primary: DedupStore, fallback: DedupStore, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker

    async def claim(
        self, requests: Sequence[ClaimRequest], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Claim]:
        async def in_redis() -> list[Claim]:
            try:
                return await self._primary.claim(requests, now, tracking)
            except SlotsMoving as moving:  # Redis is fine: only those claims are decided here
                undone = [
                    request for request, claim in zip(requests, moving.done, strict=True) if claim is None
                ]
                decided_here = iter(await self._fallback.claim(undone, now, tracking))
                return [claim if claim is not None else next(decided_here) for claim in moving.done]

        return await self.breaker.call(in_redis, lambda: self._fallback.claim(requests, now, tracking))

    async def add_repeats(
        self, counts: Sequence[RepeatCount], now: float, tracking: Tracking = NO_TRACKING
    ) -> list[Crossing]:
        async def in_redis() -> list[Crossing]:
            try:
                return await self._primary.add_repeats(counts, now, tracking)
            except SlotsMoving as moving:
                undone = [count for count, done in zip(counts, moving.done, strict=True) if done is None]
                crossings = await self._fallback.add_repeats(undone, now, tracking)
                return [crossing for done in moving.done if done is not None for crossing in done] + crossings

        return await self.breaker.call(in_redis, lambda: self._fallback.add_repeats(counts, now, tracking))
