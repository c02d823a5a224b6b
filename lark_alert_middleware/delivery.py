"""Posting rendered cards: bounded concurrency, retries with backoff for what can succeed.

Runs on the alerter thread only. Network errors, timeouts, HTTP 5xx and 429, and Lark's
frequency-limit code are retried with exponential backoff and jitter inside a total time
budget; refusals that no retry can fix (bad signature, IP allowlist, missing keyword, bad
request) are logged once per cause, with the fix, and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .card import RenderedCard
from .clients import shared_clients
from .lark import FREQUENCY_LIMITED, LarkAnswer, LarkWebhook, Outcome
from .stats import Counters

logger = logging.getLogger("lark_alert_middleware")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 1.0
    max_delay: float = 30.0
    frequency_limited_delay: float = 2.0
    total_seconds: float = 120.0

    def delay(self, attempt: int, answer: LarkAnswer) -> float:
        """Full-jitter exponential backoff; never sooner than Retry-After or Lark's rate window."""
        ceiling = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if answer.code == FREQUENCY_LIMITED or answer.http_status == 429:
            delay = max(delay, self.frequency_limited_delay)
        if answer.retry_after is not None:
            delay = max(delay, min(answer.retry_after, self.max_delay))
        return delay


Throttle = Callable[[], Awaitable[None]]


async def _no_throttle() -> None:
    return None


class Poster:
    """Delivers one card with retries; shares nothing mutable but the counters."""

    def __init__(
        self,
        webhook: LarkWebhook,
        counters: Counters,
        *,
        policy: RetryPolicy = RetryPolicy(),
        throttle: Throttle = _no_throttle,
        max_in_flight: int = 4,
    ) -> None:
        self._webhook = webhook
        self._counters = counters
        self._policy = policy
        self._throttle = throttle
        self._slots = asyncio.Semaphore(max_in_flight)
        self._reported_refusals: set[int | None] = set()

    async def deliver(self, card: RenderedCard, summary: str) -> bool:
        """Post until Lark answers code 0, a refusal, or the retry budget runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.total_seconds
        async with self._slots:
            for attempt in range(1, self._policy.attempts + 1):
                await self._throttle()
                answer = await self._webhook.post(shared_clients.http(), card.json_text)
                if answer.outcome is Outcome.DELIVERED:
                    self._counters.add("sent")
                    logger.debug("lark_alert_middleware: posted %s to %s", summary, self._webhook.safe_url)
                    return True
                if answer.outcome is Outcome.REJECTED:
                    self._refused(answer, summary)
                    return False
                delay = self._policy.delay(attempt, answer)
                if attempt == self._policy.attempts or loop.time() + delay > deadline:
                    break
                self._counters.add("retried")
                logger.debug("lark_alert_middleware: %s; retrying in %.1fs", answer.describe(), delay)
                await asyncio.sleep(delay)
        self._counters.add("failed")
        logger.warning(
            "lark_alert_middleware: gave up posting %s to %s after %d attempts: %s",
            summary,
            self._webhook.safe_url,
            attempt,
            answer.describe(),
        )
        return False

    def _refused(self, answer: LarkAnswer, summary: str) -> None:
        self._counters.add("failed")
        if answer.code in self._reported_refusals:
            logger.debug("lark_alert_middleware: Lark refused %s: %s", summary, answer.describe())
            return
        self._reported_refusals.add(answer.code)
        logger.error(
            "lark_alert_middleware: Lark refused the alert (%s) at %s: %s. Not retrying; "
            "alerts will keep failing until this is fixed.",
            summary,
            self._webhook.safe_url,
            answer.describe(),
        )
