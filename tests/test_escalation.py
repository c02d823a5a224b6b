"""Escalation inside a window: the fleet's count of an error crossing a threshold is announced once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lark_alert_middleware import ConfigurationError
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._records import ClaimRequest, RepeatCount, Thresholds
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app, shop_app
from .conftest import (
    LarkGroups,
    StoreFactory,
    card_full_title,
    card_text,
    client_for,
    end_window,
    shown_text,
)

pytestmark = pytest.mark.anyio

TEN_AND_HUNDRED = (Thresholds(0, (10, 100)),)


def test_thresholds_are_read_sorted_and_an_empty_list_turns_escalation_off() -> None:
    assert load_settings().escalate_at == (10, 100, 1000, 10000)
    assert load_settings(escalate_at="100, 10,10").escalate_at == (10, 100)
    assert load_settings(escalate_at="").escalate_at == ()
    assert load_settings(escalate_at=[5]).escalate_at == (5,)


@pytest.mark.parametrize("value", ["1", "ten", "10,-5", "2000000000"])
def test_a_threshold_that_is_not_a_count_above_one_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="LARK_ALERT_ESCALATE_AT"):
        load_settings(escalate_at=value)


async def test_counts_of_two_replicas_add_up_and_each_threshold_is_announced_once(
    replicas: StoreFactory,
) -> None:
    one, two = replicas(), replicas()
    assert (await one.claim([ClaimRequest("k", 60, 0)], now=1000.0))[0].first
    assert await one.add_repeats([RepeatCount("k", 4, TEN_AND_HUNDRED)], now=1001.0) == []
    [crossing] = await two.add_repeats([RepeatCount("k", 5, TEN_AND_HUNDRED)], now=1002.0)
    assert (crossing.destination, crossing.threshold, crossing.count, crossing.previous) == (0, 10, 10, 0)
    assert crossing.window_started_at == pytest.approx(1000.0)
    assert await one.add_repeats([RepeatCount("k", 3, TEN_AND_HUNDRED)], now=1003.0) == []
    assert await two.add_repeats([RepeatCount("k", 3, TEN_AND_HUNDRED)], now=1003.0) == []
    [hundred] = await one.add_repeats([RepeatCount("k", 90, TEN_AND_HUNDRED)], now=1004.0)
    assert (hundred.threshold, hundred.count, hundred.previous) == (100, 106, 10)


async def test_a_count_that_jumps_past_several_thresholds_is_announced_once_at_the_highest(
    replicas: StoreFactory,
) -> None:
    store = replicas()
    await store.claim([ClaimRequest("k", 60, 0)], now=1000.0)
    [crossing] = await store.add_repeats([RepeatCount("k", 149, TEN_AND_HUNDRED)], now=1004.0)
    assert (crossing.threshold, crossing.count, crossing.previous) == (100, 150, 0)
    assert await store.add_repeats([RepeatCount("k", 1, TEN_AND_HUNDRED)], now=1005.0) == []


async def test_a_new_window_announces_its_thresholds_again(replicas: StoreFactory) -> None:
    store = replicas()
    await store.claim([ClaimRequest("k", 1, 0)], now=1000.0)
    assert len(await store.add_repeats([RepeatCount("k", 20, TEN_AND_HUNDRED)], now=1000.5)) == 1
    await end_window(store, "k")
    assert (await store.claim([ClaimRequest("k", 60, 0)], now=1010.0))[0].repeats == 20
    [crossing] = await store.add_repeats([RepeatCount("k", 9, TEN_AND_HUNDRED)], now=1011.0)
    assert (crossing.threshold, crossing.window_started_at) == (10, pytest.approx(1010.0))


async def test_repeats_handed_over_after_the_window_ended_cross_nothing(replicas: StoreFactory) -> None:
    store = replicas()
    await store.claim([ClaimRequest("k", 1, 0)], now=1000.0)
    await end_window(store, "k")
    assert await store.add_repeats([RepeatCount("k", 50, TEN_AND_HUNDRED)], now=1003.0) == []
    assert (await store.claim([ClaimRequest("k", 60, 0)], now=1004.0))[0].repeats == 50  # still counted


async def test_each_destination_hears_of_its_own_thresholds(replicas: StoreFactory) -> None:
    store = replicas()
    await store.claim([ClaimRequest("k", 60, 0)], now=1000.0)
    watched = (Thresholds(0, (10, 100)), Thresholds(1, (5,)))
    crossings = await store.add_repeats([RepeatCount("k", 11, watched)], now=1001.0)
    assert sorted((c.destination, c.threshold) for c in crossings) == [(0, 10), (1, 5)]
    assert await store.add_repeats([RepeatCount("k", 1, watched)], now=1002.0) == []


async def test_an_occurrence_that_loses_its_claim_is_counted_in_the_window(replicas: StoreFactory) -> None:
    one, two = replicas(), replicas()
    await one.claim([ClaimRequest("k", 60, 0)], now=1000.0)
    assert not (await two.claim([ClaimRequest("k", 60, 7)], now=1001.0))[0].first  # 7 seen, and this one
    [crossing] = await one.add_repeats([RepeatCount("k", 1, TEN_AND_HUNDRED)], now=1002.0)
    assert crossing.count == 10


async def test_an_app_posts_an_escalation_card_once_the_window_holds_a_threshold(
    lark_receiver: LarkReceiver,
) -> None:
    app = failing_app(webhook_url=lark_receiver.url, escalate_at="5,50", check_interval=0.1)
    async with client_for(app) as client:
        for _ in range(5):
            assert (await client.get("/boom/value")).status_code == 500
        cards = lark_receiver.wait_for_cards(2)
    [escalation] = [card for card in cards if "📈" in card_full_title(card)]  # posted concurrently
    title = card_full_title(escalation)
    assert re.fullmatch(r"🔴 📈 500 GET /boom/\{kind\}: now 5 times in \d+ s · orders · production", title)
    assert escalation["header"]["template"] == "red"
    text = shown_text(escalation)
    assert re.search(r"Now \*\*5 times in \d+ s\*\*, \d+ a (second|minute), since its card at ", text)
    assert "ValueError: bad value value" in text
    assert "escalation at 5 · 50 in a window" in text


ROUTES = """
    [[route]]
    name = "payments"
    match = { route = "/payments/*" }
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
    continue = true

    [[route]]
    name = "on-call"
    match = { status = "500-599" }
    webhook_url_env = "ONCALL_LARK_WEBHOOK"
    mention = ["all"]
    mention_after = 4
"""


async def test_a_route_with_mention_after_mentions_its_people_once_the_window_holds_that_many(
    lark_groups: LarkGroups, write_routes: Callable[[str], Path]
) -> None:
    app = shop_app(
        webhook_url=lark_groups.quiet.url, routes=write_routes(ROUTES), escalate_at="", check_interval=0.1
    )
    async with client_for(app) as client:
        for _ in range(4):
            assert (await client.post("/payments/1")).status_code == 500
        first, reached = lark_groups.on_call.wait_for_cards(2)
    assert "<at id=" not in card_text(first)  # not on its ordinary cards
    assert card_full_title(reached).startswith("🔴 📈 500 POST /payments/{payment_id}: now 4 times in ")
    assert "<at id=all></at>" in card_text(reached)
    assert "escalation at 4 in a window" in shown_text(reached)
    [to_payments] = lark_groups.payments.wait_for_cards(1)  # no thresholds of its own: no escalation
    assert "📈" not in card_full_title(to_payments)
