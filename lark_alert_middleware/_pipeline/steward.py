"""The fleet's steward: what must happen once per service and environment, not once per replica.

One replica holds a lease in Redis (`SET NX PX`, renewed by its holder every check) and, while
it holds it, sweeps for errors that were carded and have been quiet for the recovery span, and
sends the daily summary when it is due. If it stops, the lease expires and another replica
takes over within a few checks. A summary is sent once (`SET NX` on the period's own key), and
only for a period the fleet watched: a fleet that was down when it was due sends it when it is
back. Without Redis, or while it is down, every process is its own steward, over what it saw.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Protocol, cast

from .._records import DailySummary, Recovery, SummaryLine
from .breaker import CircuitBreaker
from .dedup import DAY_KEPT_SECONDS, Day, InProcessDedupStore
from .redis_client import RedisClient
from .redis_keys import day_key, fleet_key, memory_key
from .scripts import Script, ScriptCall, run_script

# Errors one sweep may find recovered (one card: the most frequent listed, the rest counted);
# the rest wait for the next sweep. The fleet tracks this many errors still firing at most, and
# counts this many in a summary period: past them, the oldest (the least frequent) are dropped.
SWEEP_LIMIT = 10_000
FIRING_KEPT = 10_000
DAY_KINDS_KEPT = 10_000
# Errors a summary lists: the most frequent, then new ones not among them.
SUMMARY_TOP = 10
SUMMARY_NEW = 5

# KEYS: the lease. ARGV: this replica's name, lease milliseconds. 1 while this replica holds it.
_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: a summary period's watched and sent marks. ARGV: this replica's name, seconds to keep.
# Returns when the fleet started watching the period, if this caller is to send its summary.
_SEND_SCRIPT = """
local watched = redis.call('GET', KEYS[1])
if watched and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return watched end
return false
"""


class Steward(Protocol):
    async def lead(self, fleet: str, seconds: float) -> bool:
        """Whether this replica is the fleet's steward for the next `seconds` (taken or renewed)."""
        ...

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        """Errors carded and quiet for `quiet_seconds` now, each found once (and then forgotten)."""
        ...

    async def watch(self, fleet: str, due: float, now: float) -> None:
        """Say that the fleet is counting the summary period ending at `due` (since `now`, if first)."""
        ...

    async def summary(
        self, fleet: str, period: tuple[float, float], firing_since: float
    ) -> DailySummary | None:
        """The summary of the period (start, due), if this caller is to send it: the fleet watched
        it, and no one sent it yet. Errors seen after `firing_since` are still firing."""
        ...


def replica_name() -> str:
    """This process, as the lease names its holder: host, process, and a random part (a forked
    child makes its own steward, so it never holds its parent's lease)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisSteward:
    _lease = Script.of(_LEASE_SCRIPT)
    _send = Script.of(_SEND_SCRIPT)

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._name = replica_name()

    async def lead(self, fleet: str, seconds: float) -> bool:
        lease = fleet_key(self._prefix, fleet, "steward")
        [held] = await run_script(self._client, self._lease, [([lease], [self._name, int(seconds * 1000)])])
        return bool(held)

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        firing = fleet_key(self._prefix, fleet, "firing")
        quiet_since = now - quiet_seconds
        async with self._client.pipeline(transaction=False) as pipeline:
            pipeline.zremrangebyrank(firing, 0, -FIRING_KEPT - 1)
            pipeline.zrangebyscore(firing, "-inf", quiet_since, start=0, num=SWEEP_LIMIT)
            _, quiet = await pipeline.execute()
        keys = [_text(key) for key in cast("list[bytes]", quiet)]
        if not keys:
            return []
        async with self._client.pipeline(transaction=False) as pipeline:
            for key in keys:
                fields = ["name", "severity", "episode_started", "last", "episode_total", "to"]
                pipeline.hmget(memory_key(self._prefix, key), fields)
            memories = await pipeline.execute()
        found: list[Recovery] = []
        async with self._client.pipeline(transaction=False) as pipeline:
            for key, (name, severity, started, last, count, to) in zip(keys, memories, strict=True):
                if last is not None and float(last) > quiet_since:
                    pipeline.zadd(firing, {key: float(last)}, xx=True, gt=True)  # seen since: not yet
                    continue
                pipeline.zrem(firing, key)
                if last is not None:  # forgotten errors are dropped without a card
                    found.append(
                        Recovery(
                            key,
                            _text(name or b""),
                            _text(severity or b"error"),
                            float(started or last),
                            float(last),
                            int(count or 0),
                            tuple(int(each) for each in _text(to or b"").split(",") if each.isdigit()),
                        )
                    )
            removed = await pipeline.execute()
        # One command per key, in order: a ZREM answers 1 only for the sweep that removed it (a
        # steward taking over meanwhile may sweep too), a ZADD of an error seen since answers 0.
        removed_keys = {key for key, reply in zip(keys, removed, strict=True) if reply}
        return [recovery for recovery in found if recovery.key in removed_keys]

    async def watch(self, fleet: str, due: float, now: float) -> None:
        day = day_key(self._prefix, fleet, due)
        async with self._client.pipeline(transaction=False) as pipeline:
            pipeline.set(f"{day}:watched", f"{now:.3f}", nx=True, ex=int(due - now) + DAY_KEPT_SECONDS)
            pipeline.zremrangebyrank(day, 0, -DAY_KINDS_KEPT - 1)
            await pipeline.execute()

    async def summary(
        self, fleet: str, period: tuple[float, float], firing_since: float
    ) -> DailySummary | None:
        started, due = period
        day = day_key(self._prefix, fleet, due)
        sending: ScriptCall = ([f"{day}:watched", f"{day}:sent"], [self._name, DAY_KEPT_SECONDS])
        [watched_since] = await run_script(self._client, self._send, [sending])
        if watched_since is None:
            return None
        async with self._client.pipeline(transaction=False) as pipeline:
            pipeline.zrevrange(day, 0, SUMMARY_TOP - 1, withscores=True)
            pipeline.get(f"{day}:total")
            pipeline.zcard(day)
            pipeline.scard(f"{day}:new")
            pipeline.srandmember(f"{day}:new", SUMMARY_TOP + SUMMARY_NEW)
            top, total, kinds, new_kinds, new_sample = await pipeline.execute()
        counts = {_text(key): int(count) for key, count in top}
        new = {_text(key) for key in new_sample}
        more_new = [key for key in sorted(new) if key not in counts][:SUMMARY_NEW]
        async with self._client.pipeline(transaction=False) as pipeline:
            if more_new:
                pipeline.zmscore(day, more_new)
            for key in [*counts, *more_new]:
                pipeline.hmget(memory_key(self._prefix, key), ["name", "severity", "last"])
            replies = await pipeline.execute()
        if more_new:
            counts.update((key, int(count or 0)) for key, count in zip(more_new, replies.pop(0), strict=True))
        memories = {
            key: (_text(name or b""), _text(severity or b"error"), float(last or 0))
            for key, (name, severity, last) in zip(counts, replies, strict=True)
        }
        return summary_of(
            (max(started, float(watched_since)), due),
            (int(total or 0), int(kinds), int(new_kinds)),
            counts,
            new,
            memories,
            firing_since,
        )


class InProcessSteward:
    """Every process its own steward, over the errors its in-process store remembers."""

    def __init__(self, store: InProcessDedupStore) -> None:
        self._store = store

    async def lead(self, fleet: str, seconds: float) -> bool:
        return True

    async def recovered(self, fleet: str, quiet_seconds: int, now: float) -> list[Recovery]:
        return self._store.recovered(quiet_seconds, now, SWEEP_LIMIT)

    async def watch(self, fleet: str, due: float, now: float) -> None:
        day = self._store.day(due)
        if day.watched_since is None:
            day.watched_since = now

    async def summary(
        self, fleet: str, period: tuple[float, float], firing_since: float
    ) -> DailySummary | None:
        started, due = period
        day = self._store.day(due)
        if day.watched_since is None or day.sent:
            return None
        day.sent = True
        counts = _listed(day)
        memories = {}
        for key in counts:
            remembered = self._store.remembered(key)
            if remembered is not None:
                memories[key] = (remembered.name, remembered.severity, remembered.last_seen)
        totals = (day.total, len(day.counts), len(day.new))
        return summary_of(
            (max(started, day.watched_since), due), totals, counts, day.new, memories, firing_since
        )


def _listed(day: Day) -> dict[str, int]:
    """The most frequent errors of an in-process period, then new ones not among them."""
    top = sorted(day.counts.items(), key=lambda item: -item[1])[:SUMMARY_TOP]
    listed = dict(top)
    more_new = sorted(day.new - listed.keys(), key=lambda key: -day.counts.get(key, 0))[:SUMMARY_NEW]
    listed.update((key, day.counts.get(key, 0)) for key in more_new)
    return listed


Memories = dict[str, tuple[str, str, float]]  # key: name, severity, last seen


def summary_of(
    period: tuple[float, float],
    totals: tuple[int, int, int],
    counts: dict[str, int],
    new: set[str],
    memories: Memories,
    firing_since: float,
) -> DailySummary:
    """A summary from a period's counts: `totals` are errors, distinct errors, new ones; `counts`
    the listed errors' (forgotten ones are left out)."""
    lines = tuple(
        SummaryLine(name, severity, counts[key], key in new, last_seen >= firing_since)
        for key, (name, severity, last_seen) in memories.items()
    )
    total, kinds, new_kinds = totals
    return DailySummary(period[0], period[1], total, kinds, new_kinds, lines)


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

    async def watch(self, fleet: str, due: float, now: float) -> None:
        await self._breaker.call(
            lambda: self._primary.watch(fleet, due, now), lambda: self._fallback.watch(fleet, due, now)
        )

    async def summary(
        self, fleet: str, period: tuple[float, float], firing_since: float
    ) -> DailySummary | None:
        return await self._breaker.call(
            lambda: self._primary.summary(fleet, period, firing_since),
            lambda: self._fallback.summary(fleet, period, firing_since),
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
