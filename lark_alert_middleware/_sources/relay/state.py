"""The state each alert was last carded in: which alerts of a notification changed.

`record(states, keep_seconds)` answers, for each (key, state) in order, whether the state
differs from the one recorded, and records the new ones. A state is kept `keep_seconds` from
when it was recorded, not from when it was last seen: a still-firing alert re-sent for longer
than that counts as changed again (a reminder). With Redis, one script decides a batch
atomically, so relay workers and replicas sharing it card each change once; while Redis fails,
the in-process store decides (as dedup does).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import NoScriptError

from ..._pipeline.breaker import CircuitBreaker
from ..._pipeline.room import make_room

# Keys decided by one script call.
SCRIPT_BATCH = 500

State = tuple[str, str]  # (key, state)


class StateStore(Protocol):
    async def record(self, states: Sequence[State], keep_seconds: int) -> list[bool]:
        """For each (key, state): whether it changed; the changed ones are recorded."""
        ...


class InProcessStateStore:
    """The same answers for one process, bounded to `capacity` keys."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[str, tuple[str, float]] = {}  # key -> (state, when it is forgotten)

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[bool]:
        now = time.monotonic()
        changed = []
        for key, state in states:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == state and entry[1] > now:
                changed.append(False)
                continue
            if entry is None and len(self._entries) >= self._capacity:
                make_room(self._entries, self._capacity, lambda entry: entry[1] <= now, self._forget)
            self._entries[key] = (state, now + keep_seconds)
            changed.append(True)
        return changed

    def _forget(self, key: str) -> None:
        del self._entries[key]


# KEYS: the alerts' keys (one hash tag: one cluster slot); ARGV[1]: seconds a state is kept,
# ARGV[i + 1]: KEYS[i]'s state now. Returns the positions (from 1) of the states that changed.
_RECORD_SCRIPT = """
local changed = {}
for i, key in ipairs(KEYS) do
  local state = ARGV[i + 1]
  if redis.call('GET', key) ~= state then
    redis.call('SET', key, state, 'EX', ARGV[1])
    changed[#changed + 1] = i
  end
end
return changed
"""


class RedisStateStore:
    """Fleet-wide answers: one script call per batch of keys, atomic."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}{{relay-state}}:"
        self._sha = hashlib.sha1(_RECORD_SCRIPT.encode(), usedforsecurity=False).hexdigest()

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[bool]:
        changed: list[bool] = []
        for start in range(0, len(states), SCRIPT_BATCH):
            batch = states[start : start + SCRIPT_BATCH]
            keys = [self._prefix + key for key, _ in batch]
            arguments: list[str | int] = [keep_seconds, *(state for _, state in batch)]
            try:
                positions = await self._client.evalsha(self._sha, len(keys), *keys, *arguments)
            except NoScriptError:  # after a Redis restart or flush: the text loads it again
                positions = await self._client.eval(_RECORD_SCRIPT, len(keys), *keys, *arguments)
            flags = [False] * len(batch)
            for position in positions:
                flags[int(position) - 1] = True
            changed += flags
        return changed


class FallbackStateStore:
    """Redis first; while the breaker is open (Redis failing), the in-process store."""

    def __init__(self, primary: StateStore, fallback: StateStore, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[bool]:
        return await self.breaker.call(
            lambda: self._primary.record(states, keep_seconds),
            lambda: self._fallback.record(states, keep_seconds),
        )
