"""The state each alert was last carded in: which alerts of a notification changed.

`record(states, keep_seconds)` answers, for each (key, state) in order, whether the state
differs from the one recorded (and records the new ones), or else how long the recorded one is
still kept. A state is kept `keep_seconds` from when it was recorded, not from when it was last
seen: a still-firing alert re-sent for longer than that counts as changed again (a reminder).
With Redis, one script decides a batch atomically, so relay workers and replicas sharing it
card each change once; while Redis fails, the in-process store decides (as dedup does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from ..._pipeline.breaker import CircuitBreaker
from ..._pipeline.redis_client import RedisClient
from ..._pipeline.room import make_room
from ..._pipeline.scripts import Script, ScriptCall, run_script

# Keys decided by one script call.
SCRIPT_BATCH = 500

State = tuple[str, str]  # (key, state)
# What a store answers for one (key, state): None when the state changed (it is recorded, and
# kept `keep_seconds`); when it did not, how many seconds more the recorded one is kept.
Answer = float | None


class StateStore(Protocol):
    async def record(self, states: Sequence[State], keep_seconds: int) -> list[Answer]:
        """For each (key, state): None if it changed (then it is recorded), else the seconds it is kept."""
        ...


class KnownStates:
    """States and until when they are kept (monotonic seconds), bounded to `capacity` keys.

    The loop writes; a request may read (one dictionary lookup, safe under the GIL) to tell
    that a notification holds nothing new without waking the loop.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[str, tuple[str, float]] = {}

    def kept_for(self, key: str, state: str, now: float) -> float | None:
        """How long `state` is still kept for `key`; None if another, or none, is."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != state or entry[1] <= now:
            return None
        return entry[1] - now

    def learn(self, key: str, state: str, until: float) -> None:
        if key not in self._entries and len(self._entries) >= self._capacity:
            now = time.monotonic()
            make_room(self._entries, self._capacity, lambda entry: entry[1] <= now, self._forget)
        self._entries[key] = (state, until)

    def _forget(self, key: str) -> None:
        del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class InProcessStateStore:
    """The same answers for one process, bounded to `capacity` keys."""

    def __init__(self, capacity: int) -> None:
        self._known = KnownStates(capacity)

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[Answer]:
        now = time.monotonic()
        answers: list[Answer] = []
        for key, state in states:
            kept_for = self._known.kept_for(key, state, now)
            if kept_for is None:
                self._known.learn(key, state, now + keep_seconds)
            answers.append(kept_for)
        return answers

    def __len__(self) -> int:
        return len(self._known)


# KEYS: the alerts' keys (one hash tag: one cluster slot); ARGV[1]: seconds a state is kept,
# ARGV[i + 1]: KEYS[i]'s state now. For each key: -1 when its state changed (and is recorded),
# else the milliseconds the recorded one is still kept.
_RECORD_SCRIPT = Script.of("""
local answers = {}
for i, key in ipairs(KEYS) do
  local state = ARGV[i + 1]
  if redis.call('GET', key) ~= state then
    redis.call('SET', key, state, 'EX', ARGV[1])
    answers[i] = -1
  else
    answers[i] = redis.call('PTTL', key)
  end
end
return answers
""")


class RedisStateStore:
    """Fleet-wide answers: one script call per batch of keys, atomic."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        # One hash tag: the keys one script call touches share a Redis Cluster slot.
        self._prefix = f"{prefix}{{relay-state}}:"

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[Answer]:
        calls: list[ScriptCall] = []
        for start in range(0, len(states), SCRIPT_BATCH):
            batch = states[start : start + SCRIPT_BATCH]
            calls.append(
                ([self._prefix + key for key, _ in batch], [keep_seconds, *(state for _, state in batch)])
            )
        replies = await run_script(self._client, _RECORD_SCRIPT, calls)  # every batch in one round trip
        return [
            None if int(reply) == -1 else max(int(reply), 0) / 1000 for batch in replies for reply in batch
        ]


class FallbackStateStore:
    """Redis first; while the breaker is open (Redis failing), the in-process store."""

    def __init__(self, primary: StateStore, fallback: StateStore, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self.breaker = breaker

    async def record(self, states: Sequence[State], keep_seconds: int) -> list[Answer]:
        return await self.breaker.call(
            lambda: self._primary.record(states, keep_seconds),
            lambda: self._fallback.record(states, keep_seconds),
        )
