"""The daily summary: the period's errors, counted fleet-wide, sent once when due, late if need be."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as redis_asyncio

from lark_alert_middleware._pipeline.dedup import DedupStore, InProcessDedupStore, RedisDedupStore
from lark_alert_middleware._pipeline.schedule import DailySchedule
from lark_alert_middleware._pipeline.steward import InProcessSteward, RedisSteward, Steward
from lark_alert_middleware._records import ClaimRequest, RepeatCount, Tracking
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import QUICK_MEMORY, SHARED_REDIS_URL, card_full_title, client_for, end_window, shown_text

pytestmark = pytest.mark.anyio

DUE = 1_000_000.0
COUNTING = Tracking("fleet", summary_due=DUE)
PERIOD = (DUE - 86400, DUE)


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_summary_at_nine_is_due_at_nine_every_day_in_its_zone() -> None:
    schedule = DailySchedule(time(9, 0), ZoneInfo("UTC"))
    assert schedule.due_before(at("2026-03-10 08:59:59")) == at("2026-03-09 09:00")
    assert schedule.due_before(at("2026-03-10 09:00:00")) == at("2026-03-10 09:00")
    assert schedule.due_after(at("2026-03-10 09:00:00")) == at("2026-03-11 09:00")
    assert schedule.previous(at("2026-03-10 09:00")) == at("2026-03-09 09:00")


def test_a_summary_stays_at_nine_local_time_across_daylight_saving_time() -> None:
    schedule = DailySchedule(time(9, 0), ZoneInfo("Europe/Paris"))
    due = schedule.due_after(at("2026-03-28 12:00", "Europe/Paris"))  # the clocks go forward that night
    assert datetime.fromtimestamp(due, ZoneInfo("Europe/Paris")).strftime("%m-%d %H:%M") == "03-29 09:00"
    assert due - schedule.previous(due) == 23 * 3600


@pytest.fixture(params=["in-process", "redis"])
async def fleet(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[tuple[DedupStore, Steward, Steward]]:
    """One replica's store, and the stewards of two replicas."""
    if request.param == "in-process":
        store = InProcessDedupStore(100, QUICK_MEMORY)
        steward = InProcessSteward(store)
        yield store, steward, steward
        return
    client = redis_asyncio.Redis.from_url(SHARED_REDIS_URL)
    yield (
        RedisDedupStore(client, redis_prefix, QUICK_MEMORY),
        RedisSteward(client, redis_prefix),
        RedisSteward(client, redis_prefix),
    )
    await client.aclose()


def claim(key: str, severity: str = "error", repeats_here: int = 0) -> list[ClaimRequest]:
    return [ClaimRequest(key, 60, repeats_here, f"GET /{key} 500", severity)]


async def test_a_watched_period_is_summarised_once_with_its_counts(
    fleet: tuple[DedupStore, Steward, Steward],
) -> None:
    store, one, two = fleet
    await one.watch("fleet", DUE, now=DUE - 3600)
    await store.claim(claim("old"), now=DUE - 3500, tracking=Tracking("fleet"))  # seen before: not new
    await end_window(store, "old")
    await store.claim(claim("old", repeats_here=4), now=DUE - 3000, tracking=COUNTING)
    await store.claim(claim("fresh", "warning"), now=DUE - 2000, tracking=COUNTING)
    await store.add_repeats([RepeatCount("fresh", 9)], now=DUE - 100, tracking=COUNTING)
    summary = await two.summary("fleet", PERIOD, firing_since=DUE - 600)
    assert summary is not None
    assert (summary.started_at, summary.ended_at) == (DUE - 3600, DUE)  # counted since it was watched
    assert (summary.total, summary.kinds, summary.new_kinds) == (15, 2, 1)
    assert [(line.name, line.count, line.new, line.firing) for line in summary.lines] == [
        ("GET /fresh 500", 10, True, True),
        ("GET /old 500", 5, False, False),
    ]
    assert await one.summary("fleet", PERIOD, firing_since=DUE - 600) is None  # sent once


async def test_a_period_the_fleet_never_watched_is_not_summarised(
    fleet: tuple[DedupStore, Steward, Steward],
) -> None:
    store, one, _ = fleet
    await store.claim(claim("a"), now=DUE - 100, tracking=COUNTING)
    assert await one.summary("fleet", PERIOD, firing_since=DUE - 600) is None


async def test_a_quiet_day_is_summarised_as_such(fleet: tuple[DedupStore, Steward, Steward]) -> None:
    _, one, _ = fleet
    await one.watch("fleet", DUE, now=PERIOD[0] + 1)
    summary = await one.summary("fleet", PERIOD, firing_since=DUE - 600)
    assert summary is not None and (summary.total, summary.lines) == (0, ())


async def test_an_app_sends_its_summary_when_it_is_due(lark_receiver: LarkReceiver) -> None:
    due = datetime.now(timezone.utc).timestamp() + 2
    at_time = datetime.fromtimestamp(due, timezone.utc).strftime("%H:%M:%S")
    app = failing_app(webhook_url=lark_receiver.url, daily_summary=at_time, check_interval=0.1)
    async with client_for(app) as client:
        for _ in range(3):
            assert (await client.get("/conflict")).status_code == 409
        _, summary = lark_receiver.wait_for_cards(2)
    assert card_full_title(summary) == "📋 Daily summary: 3 errors · orders · production"
    assert summary["header"]["template"] == "blue"
    text = shown_text(summary)
    assert re.search(r"\*\*Period\*\*\n\d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\)", text)
    assert "**Errors**\n3 of 1 kinds · 1 new" in text
    assert "🟠 🆕 🔥 **3\u00d7** 409 GET /conflict" in text
