"""When the card speaks, across two uvicorn workers sharing Redis: escalation, recovered, summary."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from lark_alert_middleware._pipeline.dedup import RedisDedupStore, dedup_key, fleet_of
from lark_alert_middleware._pipeline.steward import RedisSteward
from lark_alert_middleware._records import ClaimRequest, Tracking
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, card_full_title, shown_text, wait_until
from .conftest import Server
from .test_uvicorn import hammer

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]


def test_150_identical_errors_in_one_window_give_the_first_card_and_one_per_threshold(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_ESCALATE_AT="10,100",
        LARK_ALERT_CHECK_INTERVAL="0.2",
    )
    assert asyncio.run(hammer(server.url, ["/status/503"] * 15)) == [503] * 15
    lark_receiver.wait_for_cards(2)
    assert asyncio.run(hammer(server.url, ["/status/503"] * 135)) == [503] * 135
    lark_receiver.wait_for_cards(3)
    output = server.terminate()
    titles = [card_full_title(card) for card in lark_receiver.cards]
    assert len(titles) == 3, (titles, output)
    assert titles[0] == "🔴 🆕 503 GET /status/{status} · orders · production"
    assert re.fullmatch(
        r"🔴 📈 503 GET /status/\{status\}: now 1\d times in \d+ s · orders · production", titles[1]
    )
    assert re.fullmatch(
        r"🔴 📈 503 GET /status/\{status\}: now 1\d\d times in \d+ s · orders · production", titles[2]
    )
    assert "(crossed 10)" in str(lark_receiver.cards[1]) and "(crossed 100)" in str(lark_receiver.cards[2])


def summary_at(due: float) -> str:
    """LARK_ALERT_DAILY_SUMMARY for a summary due at `due` (UTC, to the second)."""
    return datetime.fromtimestamp(due, timezone.utc).strftime("%H:%M:%S")


def summaries(lark: LarkReceiver) -> list[dict[str, Any]]:
    return [card for card in lark.cards if "Daily summary" in card_full_title(card)]


def test_the_fleet_sends_each_recovered_card_and_the_daily_summary_once(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    due = time.time() + 10  # after the workers start (2 s, or 6 s on a busy machine) and the errors below
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_DAILY_SUMMARY=summary_at(due),
        LARK_ALERT_RECOVERY_AFTER="1",
        LARK_ALERT_CHECK_INTERVAL="0.2",
        LARK_ALERT_ESCALATE_AT="",
    )
    assert asyncio.run(hammer(server.url, ["/teapot"] * 12)) == [418] * 12
    assert time.time() < due, "the workers took too long to start: the errors are not in the period"
    wait_until(lambda: summaries(lark_receiver), timeout=20, what="the daily summary")
    # A recovered card comes a second of sweeps later: a second summary would be in by then.
    assert asyncio.run(hammer(server.url, ["/conflict"] * 5)) == [409] * 5
    wait_until(lambda: "409 GET /conflict: quiet" in str(lark_receiver.cards), what="the recovered card")
    output = server.terminate()
    titles = [card_full_title(card) for card in lark_receiver.cards]
    assert len(titles) == 5, (titles, output)
    assert titles[0] == "🟠 🆕 418 GET /teapot · orders · production"
    assert re.fullmatch(r"🟢 418 GET /teapot: quiet for \d+ s · orders · production", titles[1])
    assert "after 12 times in " in shown_text(lark_receiver.cards[1])
    [summary] = summaries(lark_receiver)
    assert card_full_title(summary) == "📋 Daily summary: 12 errors · orders · production"
    assert "🟠 🆕 **12\u00d7** 418 GET /teapot" in shown_text(summary)  # new, and quiet since (no 🔥)
    assert titles[3] == "🟠 🆕 409 GET /conflict · orders · production"
    assert re.fullmatch(r"🟢 409 GET /conflict: quiet for \d+ s · orders · production", titles[4])


def test_a_summary_due_while_no_worker_was_up_is_sent_once_when_they_start(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    due = time.time() - 2
    asyncio.run(_counted_and_watched_before(due, redis_prefix))  # by the workers of a previous deploy
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_DAILY_SUMMARY=summary_at(due),
        LARK_ALERT_RECOVERY_AFTER="1",
        LARK_ALERT_CHECK_INTERVAL="0.2",
    )
    wait_until(lambda: summaries(lark_receiver), timeout=20, what="the late daily summary")
    assert asyncio.run(hammer(server.url, ["/conflict"])) == [409]
    wait_until(lambda: "409 GET /conflict: quiet" in str(lark_receiver.cards), what="the recovered card")
    output = server.terminate()
    [summary] = summaries(lark_receiver)
    assert card_full_title(summary) == "📋 Daily summary: 7 errors · orders · production", output
    assert "🔴 🆕 **7\u00d7** 500 GET /boom/{kind}" in shown_text(summary)


async def _counted_and_watched_before(due: float, prefix: str) -> None:
    """What a fleet that ran before `due` and stopped left in Redis: an error counted, the period watched."""
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    try:
        fleet = fleet_of("orders", "production")
        fingerprint = "GET /boom/{kind} 500 ValueError"
        key = dedup_key("orders", "production", fingerprint)
        tracking = Tracking(fleet, summary_due=due)
        await RedisSteward(client, prefix).watch(fleet, due, now=due - 3600)
        await RedisDedupStore(client, prefix).claim(
            [ClaimRequest(key, 60, 6, "500 GET /boom/{kind}", "error")], now=due - 600, tracking=tracking
        )
    finally:
        await client.aclose()
