"""Whether an error was already reported in its window: one protocol, two stores.

With Redis, `SET <key> <now> NX EX <window>` decides: only the caller that sets the key
alerts, so every replica sharing the Redis raises one alert per error per window. Without
Redis the same decision is made in-process. Both also count the repeats that were not
reported, so the next alert can say how often the error happened since the previous one, and
remember each error (`memory.py`), so that its next card can say whether it is new or back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import NoScriptError

from .._records import Claim, ClaimRequest, Crossing, History, RepeatCount, Thresholds
from .breaker import CircuitBreaker
from .memory import DEFAULT_MEMORY, Memory, Remembered, remember
from .room import make_room

# How long a repeat count and the previous alert's time are kept between windows.
HISTORY_SECONDS = 7 * 24 * 3600


class DedupStore(Protocol):
    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        """Decide a batch of claims (one Redis round trip for all of them), in order."""
        ...

    async def add_repeats(self, counts: Sequence[RepeatCount], now: float) -> list[Crossing]:
        """Add repeats counted in this process to the counts the next alerts will report, and say
        which thresholds the counts inside open windows crossed, each to one caller only."""
        ...


def dedup_key(service: str, environment: str, fingerprint: str) -> str:
    """A short, safe key; service and environment keep apps sharing a Redis apart."""
    # surrogatepass: a fingerprint made from request data may hold lone surrogates.
    text = f"{service}\0{environment}\0{fingerprint}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return digest.hexdigest()


def reached_threshold(counts: tuple[int, ...], count: int) -> int:
    """The highest of `counts` that `count` reached; 0 for none."""
    return max((threshold for threshold in counts if threshold <= count), default=0)


@dataclass(slots=True)
class _Entry:
    window_ends: float
    repeats: int
    last_alert_at: float | None
    escalated: dict[str, int] | None = None  # the highest threshold announced per destination
    remembered: Remembered | None = None


class InProcessDedupStore:
    """The same decisions for one process, bounded to `capacity` keys."""

    def __init__(self, capacity: int, memory: Memory = DEFAULT_MEMORY) -> None:
        self._capacity = capacity
        self._memory = memory
        self._entries: dict[str, _Entry] = {}

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        return [self._claim_one(request, now) for request in requests]

    def _claim_one(self, request: ClaimRequest, now: float) -> Claim:
        entry = self._entries.get(request.key)
        occurrences = request.repeats_here + 1
        if entry is not None and entry.window_ends > now:
            entry.repeats += occurrences  # this occurrence is a repeat too
            if entry.remembered is not None:
                entry.remembered.seen(occurrences, now)
            return Claim(False, entry.window_ends - now)
        if entry is None:
            self._make_room(now)
            entry = self._entries[request.key] = _Entry(0.0, 0, None)
        entry.remembered, history = remember(
            entry.remembered, self._memory, request.fingerprint, request.severity, occurrences, now
        )
        window = request.window_seconds
        repeats = entry.repeats + request.repeats_here
        claim = Claim(True, float(window), repeats, entry.last_alert_at, history)
        entry.window_ends, entry.repeats, entry.last_alert_at, entry.escalated = now + window, 0, now, None
        return claim

    async def add_repeats(self, counts: Sequence[RepeatCount], now: float) -> list[Crossing]:
        crossings = []
        for count in counts:
            entry = self._entries.get(count.key)
            if entry is None:
                continue
            entry.repeats += count.repeats
            if entry.remembered is not None:
                entry.remembered.seen(count.repeats, now)
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
            if reached > announced.get(thresholds.destination, 0):
                entry.escalated = {**announced, thresholds.destination: reached}
                crossings.append(
                    Crossing(count.key, thresholds.destination, reached, in_window, window_started_at)
                )
        return crossings

    def _make_room(self, now: float) -> None:
        if len(self._entries) >= self._capacity:
            make_room(self._entries, self._capacity, lambda entry: entry.window_ends <= now, self._drop)

    def _drop(self, key: str) -> None:
        del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


# Every script's keys share one hash tag (`{<key>}`): one cluster slot. Scripts need Redis 6.2+.

# KEYS: window, repeat count, previous alert time, thresholds announced, memory (a hash).
# ARGV: window seconds, now, repeats seen by the caller, history seconds, memory seconds,
# regression seconds, fingerprint (cut short), severity.
_CLAIM_SCRIPT = """
local now, repeats_here = tonumber(ARGV[2]), tonumber(ARGV[3])
local function remember(occurrences)
  redis.call('HSETNX', KEYS[5], 'first', ARGV[2])
  redis.call('HSET', KEYS[5], 'last', ARGV[2], 'fingerprint', ARGV[7], 'severity', ARGV[8])
  local total = redis.call('HINCRBY', KEYS[5], 'total', occurrences)
  redis.call('EXPIRE', KEYS[5], ARGV[5])
  return total
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  local repeats = tonumber(redis.call('GETDEL', KEYS[2]) or '0') + repeats_here
  local previous = redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4], 'GET')
  redis.call('DEL', KEYS[4])
  local seen = redis.call('HMGET', KEYS[5], 'first', 'last')
  local novelty, first, last = 'new', '', ''
  if seen[2] then
    first, last = seen[1] or seen[2], seen[2]
    novelty = 'ongoing'
    if now - tonumber(last) >= tonumber(ARGV[6]) then novelty = 'back' end
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
# destination, threshold, ...} for the thresholds crossed that no caller was told of before.
_REPEATS_SCRIPT = """
local repeats = redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'total', ARGV[1])
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
  if reached > tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0') then
    redis.call('HSET', KEYS[3], ARGV[i], reached)
    answer[#answer + 1] = ARGV[i]
    answer[#answer + 1] = reached
  end
end
if #answer > 2 then
  redis.call('PEXPIRE', KEYS[3], math.max(redis.call('PTTL', KEYS[1]), 1))
end
return answer
"""


@dataclass(frozen=True, slots=True)
class _Script:
    text: str
    sha: str

    @classmethod
    def of(cls, text: str) -> _Script:
        return cls(text, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())


ScriptCall = tuple[list[str], list[str | int]]  # keys, arguments


class RedisDedupStore:
    """Fleet-wide decisions: one script call per claim, a batch of them in one round trip."""

    _claim = _Script.of(_CLAIM_SCRIPT)
    _repeats = _Script.of(_REPEATS_SCRIPT)

    def __init__(self, client: redis_asyncio.Redis, prefix: str, memory: Memory = DEFAULT_MEMORY) -> None:
        self._client = client
        self._prefix = prefix
        self._memory = memory

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}{{{key}}}"
        return [f"{base}:window", f"{base}:repeats", f"{base}:last", f"{base}:escalated", f"{base}:seen"]

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        memory = self._memory
        calls: list[ScriptCall] = [
            (
                self._keys(request.key),
                [
                    request.window_seconds,
                    f"{now:.3f}",
                    request.repeats_here,
                    HISTORY_SECONDS,
                    memory.seconds,
                    memory.regression_after,
                    request.fingerprint,
                    request.severity,
                ],
            )
            for request in requests
        ]
        replies = await self._run(self._claim, calls)
        return [_claim_from(request, reply) for request, reply in zip(requests, replies, strict=True)]

    async def add_repeats(self, counts: Sequence[RepeatCount], now: float) -> list[Crossing]:
        calls: list[ScriptCall] = []
        for count in counts:
            window, repeats, _, escalated, seen = self._keys(count.key)
            arguments: list[str | int] = [count.repeats, HISTORY_SECONDS, f"{now:.3f}", self._memory.seconds]
            calls.append(
                ([window, repeats, escalated, seen], [*arguments, *_threshold_arguments(count.thresholds)])
            )
        replies = await self._run(self._repeats, calls)
        return [
            crossing
            for count, reply in zip(counts, replies, strict=True)
            for crossing in _crossings_from(count, reply)
        ]

    async def _run(self, script: _Script, calls: Sequence[ScriptCall]) -> list[Any]:
        """Every call in one round trip, by hash: not through redis-py's Script in a pipeline,
        which asks SCRIPT EXISTS first, a second round trip per batch. Redis answers NOSCRIPT
        only after a restart or a flush; then those calls go again with the script's text."""
        if not calls:
            return []
        replies = await self._pipelined(script, calls, by_hash=True)
        unknown = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if unknown:
            again = await self._pipelined(script, [calls[index] for index in unknown], by_hash=False)
            for index, reply in zip(unknown, again, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _pipelined(self, script: _Script, calls: Sequence[ScriptCall], *, by_hash: bool) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipeline:
            for keys, arguments in calls:
                if by_hash:
                    pipeline.evalsha(script.sha, len(keys), *keys, *arguments)
                else:
                    pipeline.eval(script.text, len(keys), *keys, *arguments)
            return list(await pipeline.execute(raise_on_error=False))


def _threshold_arguments(thresholds: Sequence[Thresholds]) -> list[str]:
    arguments = []
    for each in thresholds:
        arguments += [each.destination, ",".join(map(str, each.counts))]
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
    pairs = reply[2:]
    return [
        Crossing(count.key, _text(destination), int(threshold), in_window, started)
        for destination, threshold in zip(pairs[::2], pairs[1::2], strict=True)
    ]


def _time(value: bytes | str) -> float | None:
    return float(value) if value else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class FallbackDedupStore:
    """Redis first; while the breaker is open (Redis failing), the in-process store."""

    def __init__(self, primary: DedupStore, fallback: DedupStore, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker

    async def claim(self, requests: Sequence[ClaimRequest], now: float) -> list[Claim]:
        return await self.breaker.call(
            lambda: self._primary.claim(requests, now), lambda: self._fallback.claim(requests, now)
        )

    async def add_repeats(self, counts: Sequence[RepeatCount], now: float) -> list[Crossing]:
        return await self.breaker.call(
            lambda: self._primary.add_repeats(counts, now), lambda: self._fallback.add_repeats(counts, now)
        )
