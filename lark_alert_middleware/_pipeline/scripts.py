"""Lua scripts run by hash, a batch of calls in one round trip, with other commands alongside.

Not through redis-py's `Script` in a pipeline: that asks SCRIPT EXISTS first, a second round
trip per batch. Redis answers NOSCRIPT only after a restart or a flush of its scripts; then
those calls go again with the script's text (which loads it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import NoScriptError

from .redis_client import RedisClient

ScriptCall = tuple[list[str], list[str | int]]  # keys, arguments
# Adds commands to a pipeline (whose replies are checked for errors, then dropped).
Alongside = Callable[[Pipeline | ClusterPipeline], None]


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    sha: str

    @classmethod
    def of(cls, text: str) -> Script:
        return cls(text, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())


async def run_script(
    client: RedisClient,
    script: Script,
    calls: Sequence[ScriptCall],
    alongside: Alongside | None = None,
    *,
    tolerated: Callable[[object], bool] = lambda reply: False,
) -> list[Any]:
    """The replies of `calls`, in order, from one round trip that also sends what `alongside` adds.

    Raises the first error Redis answered (a script's or a command's), as one command would,
    unless `tolerated`: such a reply of a call is returned as it is, one of a command ignored.
    """
    if not calls and alongside is None:
        return []
    replies = await _pipelined(client, script, calls, alongside, by_hash=True)
    replies, others = replies[: len(calls)], replies[len(calls) :]
    unknown = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unknown:
        again = await _pipelined(client, script, [calls[index] for index in unknown], None, by_hash=False)
        for index, reply in zip(unknown, again, strict=True):
            replies[index] = reply
    for reply in (*replies, *others):
        if isinstance(reply, Exception) and not tolerated(reply):
            raise reply
    return replies


async def _pipelined(
    client: RedisClient,
    script: Script,
    calls: Sequence[ScriptCall],
    alongside: Alongside | None,
    *,
    by_hash: bool,
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipeline:
        for keys, arguments in calls:
            if by_hash:
                pipeline.evalsha(script.sha, len(keys), *keys, *arguments)
            else:
                pipeline.eval(script.text, len(keys), *keys, *arguments)
        if alongside is not None:
            alongside(pipeline)
        return list(await pipeline.execute(raise_on_error=False))
