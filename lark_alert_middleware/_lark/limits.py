"""Lark's rate limits for one custom bot (5 a second, 100 a minute), as a sliding window.

Every post, retries included, first reserves a place in a `RateBudget`. This module holds the
limits and the window of one process; the pipeline's Redis budget shares one window across a
fleet. The windows are longer than Lark's (5 in any 2 s, 100 in any 61 s): a post reaches Lark
some time after it reserved its place — network latency, and on a busy host, scheduling — and
that jitter must not push one over.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateLimits:
    per_second: int = 5
    second_window: float = 2.0
    per_minute: int = 100
    minute_window: float = 61.0


LARK_LIMITS = RateLimits()
# "Not yet" is never 0: waiters woken at the very end of a window must ask again, not post.
MINIMUM_WAIT = 0.001


class RateBudget(Protocol):
    async def reserve(self) -> float:
        """Take one post from the budget and return 0, or return the (positive) seconds to wait first."""
        ...


async def wait_for_budget(budget: RateBudget) -> None:
    """Return once a post is reserved, sleeping as long as the budget says."""
    while True:
        wait = await budget.reserve()
        if wait <= 0:
            return
        await asyncio.sleep(wait)


class InProcessRateBudget:
    """The sliding windows for one process."""

    def __init__(self, limits: RateLimits = LARK_LIMITS) -> None:
        self._limits = limits
        self._posts: deque[float] = deque()

    async def reserve(self) -> float:
        limits, posts, now = self._limits, self._posts, time.monotonic()
        while posts and posts[0] <= now - limits.minute_window:
            posts.popleft()
        if len(posts) >= limits.per_minute:
            return max(posts[0] + limits.minute_window - now, MINIMUM_WAIT)
        if len(posts) >= limits.per_second:
            oldest_recent = posts[-limits.per_second]
            if oldest_recent > now - limits.second_window:
                return max(oldest_recent + limits.second_window - now, MINIMUM_WAIT)
        posts.append(now)
        return 0.0
