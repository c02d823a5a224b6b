"""Where a card goes: Lark's webhook within its rate budget, retried while it can succeed, or the log.

Network errors, timeouts, HTTP 5xx and 429, and Lark's frequency-limit code are retried with
exponential backoff and jitter inside a total time budget; refusals no retry can fix (bad
signature, IP allowlist, missing keyword, bad request) are logged once per cause, with the
fix, and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from .._records import RenderedCard
from .._stats import Counters
from .limits import InProcessRateBudget, RateBudget, wait_for_budget
from .webhook import FREQUENCY_LIMITED, LarkAnswer, LarkWebhook, Outcome

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


class Sink(Protocol):
    async def send(self, card: RenderedCard, summary: str) -> bool:
        """Deliver one card; True when it arrived. Never raises."""
        ...


class LogSink:
    """Without a webhook: each alert is one WARNING line (the card itself at DEBUG).

    The lines keep Lark's pace (the same budget, per process), so a storm that would not flood
    the group does not flood the log either; the excess goes into digests as it would for Lark.
    """

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._budget = InProcessRateBudget()

    async def send(self, card: RenderedCard, summary: str) -> bool:
        await wait_for_budget(self._budget)
        self._counters.add("sent")
        logger.warning("lark_alert_middleware alert (LARK_WEBHOOK_URL is not set): %s", summary)
        logger.debug("lark_alert_middleware card: %s", card.json_text)
        return True


class LarkSink:
    """Posts to the webhook within the rate budget, retrying what can succeed."""

    def __init__(
        self,
        webhook: LarkWebhook,
        budget: RateBudget,
        counters: Counters,
        http_client: Callable[[], httpx.AsyncClient],
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._webhook = webhook
        self._http_client = http_client
        self._budget = budget
        self._counters = counters
        self._policy = policy
        self._reported_refusals: set[int | None] = set()
        # One poster at a time asks the shared budget; the others wait here, not in Redis.
        self._budget_turn = asyncio.Lock()

    async def send(self, card: RenderedCard, summary: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.total_seconds
        attempt = 0
        while True:
            attempt += 1
            client = self._http_client()  # before the reservation: creating it can take a while
            async with self._budget_turn:
                await wait_for_budget(self._budget)
            answer = await self._webhook.post(client, card.json_text)
            if answer.outcome is Outcome.DELIVERED:
                self._counters.add("sent")
                logger.debug("lark_alert_middleware: posted %s: Lark answered %s", summary, answer.describe())
                return True
            if answer.outcome is Outcome.REJECTED:
                self._refused(answer, summary)
                return False
            delay = self._policy.delay(attempt, answer)
            if attempt >= self._policy.attempts or loop.time() + delay > deadline:
                self._counters.add("failed")
                logger.warning(
                    "lark_alert_middleware: gave up posting %s to %s after %d attempts: %s",
                    summary,
                    self._webhook.safe_url,
                    attempt,
                    answer.describe(),
                )
                return False
            self._counters.add("retried")
            logger.debug(
                "lark_alert_middleware: %s: %s; retrying in %.1fs", summary, answer.describe(), delay
            )
            await asyncio.sleep(delay)

    def _refused(self, answer: LarkAnswer, summary: str) -> None:
        self._counters.add("failed")
        if answer.code in self._reported_refusals:
            logger.debug("lark_alert_middleware: Lark refused %s: %s", summary, answer.describe())
            return
        self._reported_refusals.add(answer.code)
        logger.error(
            "lark_alert_middleware: Lark refused the alert %s at %s: %s. Not retrying; "
            "alerts will keep failing until this is fixed.",
            summary,
            self._webhook.safe_url,
            answer.describe(),
        )
