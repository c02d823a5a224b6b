"""Routes end to end: each error reaches the right Lark groups (three real receivers) through real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI

from lark_alert_middleware import ErrorEvent
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._lark.webhook import FREQUENCY_LIMITED
from lark_alert_middleware._pipeline.build import build_pipeline
from lark_alert_middleware._pipeline.pipeline import Pipeline
from lark_alert_middleware.testing import LarkReceiver

from .apps import shop_app
from .conftest import (
    SHARED_REDIS_URL,
    LarkGroups,
    card_text,
    card_title,
    client_for,
    find_middleware,
    keep_the_alerter_busy,
)
from .servers import REPO

pytestmark = pytest.mark.anyio
WriteRoutes = Callable[[str], Path]
COMPACT = REPO / "examples" / "compact_card.json.j2"

# The README's example, with the compact card from examples/.
EXAMPLE = f"""
    [[route]]
    name = "drop-scanners"
    match = {{ route = "<unmatched>", status = "404" }}
    drop = true

    [[route]]
    name = "payments"
    match = {{ route = "/payments/*" }}
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
    mention = ["ou_3f1c2d9e"]
    continue = true

    [[route]]
    name = "on-call"
    match = {{ status = "500-599" }}
    webhook_url_env = "ONCALL_LARK_WEBHOOK"
    mention = ["all"]
    mention_after = 20
    rate_limit = 300

    [[route]]
    name = "quiet"
    match = {{}}
    template = "{COMPACT}"
"""


def routed_shop(groups: LarkGroups, routes: Path, redis_prefix: str, **options: Any) -> FastAPI:
    return shop_app(
        webhook_url=groups.quiet.url,
        redis_url=SHARED_REDIS_URL,
        redis_key_prefix=redis_prefix,
        routes=routes,
        **options,
    )


async def fail(app: FastAPI, *requests: tuple[str, str]) -> Pipeline:
    """Send the requests (method, URL) and wait until their alerts are delivered."""
    async with client_for(app) as client:
        for method, url in requests:
            assert (await client.request(method, url)).status_code >= 400
    pipeline = find_middleware(app).alerter
    assert pipeline is not None and pipeline.flush(15)
    return pipeline


def mentions(card: dict[str, Any]) -> list[str]:
    """Whom a card mentions: the ids of its `<at>` tags."""
    text = card_text(card)
    return [part.split("></at>")[0] for part in text.split("<at id=")[1:]]


def keys(prefix: str, pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        return sorted(client.scan_iter(match=f"{prefix}{pattern}"))
    finally:
        client.close()


async def test_a_server_error_on_payments_reaches_payments_and_on_call(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    app = routed_shop(lark_groups, write_routes(EXAMPLE), redis_prefix)
    pipeline = await fail(app, *[("POST", "/payments/1")] * 5)
    [to_payments] = lark_groups.payments.cards
    [to_on_call] = lark_groups.on_call.cards
    assert card_title(to_payments) == card_title(to_on_call) == "500 POST /payments/{payment_id}"
    assert "· shop ·" in card_text(to_on_call)  # every route's cards name the service (the app's title)
    assert lark_groups.quiet.cards == []
    assert mentions(to_payments) == ["ou_3f1c2d9e"]  # its mention, on its cards only
    assert mentions(to_on_call) == []  # mention_after = 20: not on an ordinary card
    stats = pipeline.stats()
    # One error: counted once, whatever the number of routes it went to.
    assert (stats.raised, stats.deduplicated, stats.sent) == (5, 4, 2)


async def test_an_error_two_routes_take_is_claimed_once(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    same_window = EXAMPLE.replace("rate_limit = 300", "rate_limit = 60")
    app = routed_shop(lark_groups, write_routes(same_window), redis_prefix, rate_limit=60)
    await fail(app, ("POST", "/payments/1"))
    assert len(lark_groups.payments.cards) == len(lark_groups.on_call.cards) == 1
    assert len(keys(redis_prefix, "{*}:window")) == 1  # one claim in Redis for the two cards


async def test_a_route_with_a_longer_window_keeps_it_in_a_key_of_its_own(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    app = routed_shop(lark_groups, write_routes(EXAMPLE), redis_prefix, rate_limit=60)
    await fail(app, ("POST", "/payments/1"))
    [error_window] = keys(redis_prefix, "{????????????????????????????????}:window")
    [on_call_window] = keys(redis_prefix, "{*:*}:window")
    assert on_call_window.startswith(error_window[: -len("}:window")])
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        assert 290 < client.ttl(on_call_window) <= 300 and 50 < client.ttl(error_window) <= 60
    finally:
        client.close()


async def test_a_scanner_404_reaches_nobody_and_is_counted_as_routed_away(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    app = routed_shop(lark_groups, write_routes(EXAMPLE), redis_prefix)
    pipeline = await fail(app, ("GET", "/wp-login.php"))
    assert [receiver.requests for receiver in lark_groups.all()] == [[], [], []]
    stats = pipeline.stats()
    assert (stats.raised, stats.routed_away, stats.sent, stats.dropped) == (1, 1, 0, 0)


async def test_a_422_reaches_quiet_with_the_compact_card(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    app = routed_shop(lark_groups, write_routes(EXAMPLE), redis_prefix)
    await fail(app, ("POST", "/orders/7"))
    [card] = lark_groups.quiet.cards
    assert card_title(card) == "422 POST /orders/{order_id}"
    assert next(element["tag"] for element in card["elements"]) == "markdown"  # compact: no fields
    assert "div" not in [element["tag"] for element in card["elements"]]
    assert lark_groups.payments.requests == lark_groups.on_call.requests == []


async def test_an_error_no_route_matches_goes_to_the_default_webhook(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    routes = write_routes(
        '[[route]]\nname = "payments"\nmatch = { route = "/payments/*" }\n'
        'webhook_url_env = "PAYMENTS_LARK_WEBHOOK"\nwebhook_secret_env = "PAYMENTS_LARK_SECRET"\n'
    )
    app = routed_shop(lark_groups, routes, redis_prefix, mention="all")
    await fail(app, ("POST", "/orders/1?status=502"), ("POST", "/payments/1?status=502"))
    [default_card] = lark_groups.quiet.cards
    assert card_title(default_card) == "502 POST /orders/{order_id}"
    assert mentions(default_card) == ["all"]  # LARK_ALERT_MENTION stays the default's
    [payments_card] = lark_groups.payments.cards
    assert mentions(payments_card) == []


async def test_a_route_status_filter_alerts_statuses_the_default_leaves_out(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    routes = write_routes(
        '[[route]]\nname = "orders-4xx"\nmatch = { route = "/orders/*" }\nstatus_codes = "400-499"\n'
        'webhook_url_env = "ONCALL_LARK_WEBHOOK"\n'
    )
    app = routed_shop(lark_groups, routes, redis_prefix, status_codes="500-599")
    pipeline = await fail(app, ("POST", "/orders/1?status=409"), ("POST", "/payments/1?status=409"))
    assert [card_title(card) for card in lark_groups.on_call.cards] == ["409 POST /orders/{order_id}"]
    assert lark_groups.quiet.requests == []  # the default still alerts 500-599 only
    assert pipeline.stats().routed_away == 1


async def test_each_route_cards_an_error_once_per_its_own_window_and_counts_what_it_did_not_card(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    routes = write_routes("""
        [[route]]
        name = "payments"
        match = { route = "/payments/*" }
        webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
        webhook_secret_env = "PAYMENTS_LARK_SECRET"
        rate_limit = 1
        continue = true

        [[route]]
        name = "on-call"
        match = { status = "500-599" }
        webhook_url_env = "ONCALL_LARK_WEBHOOK"
        rate_limit = 2
    """)
    app = routed_shop(lark_groups, routes, redis_prefix)
    sent = 0
    deadline = time.monotonic() + 10
    while len(lark_groups.on_call.cards) < 2 and time.monotonic() < deadline:
        await fail(app, ("POST", "/payments/1"))  # one at a time: each decided before the next
        sent += 1
    first, second = lark_groups.on_call.cards
    assert "Repeated" not in card_text(first)
    # Every occurrence between its two cards, those the payments route carded included.
    assert f"Repeated {sent - 2} times" in card_text(second)
    assert len(lark_groups.payments.cards) >= 2  # its window is shorter: it carded again sooner
    assert "Repeated" in card_text(lark_groups.payments.cards[1])


async def test_each_group_stays_within_its_own_rate_limits_in_a_storm_across_all_three(
    lark_groups: LarkGroups, write_routes: WriteRoutes, redis_prefix: str
) -> None:
    app = routed_shop(lark_groups, write_routes(EXAMPLE), redis_prefix, queue_size=6)
    # Distinct errors: 12 server errors on payments (to payments and on-call), 12 client errors (quiet).
    storm = [("POST", f"/payments/1?status={500 + index}") for index in range(12)]
    storm += [("POST", f"/orders/1?status={410 + index}") for index in range(12)]
    pipeline = await fail(app, *storm)
    for receiver in lark_groups.all():
        assert FREQUENCY_LIMITED not in [request.answer_code for request in receiver.requests]
        assert within_lark_limits([request.received_at for request in receiver.requests])
        alerts = [card for card in receiver.cards if "more errors since" not in card_title(card)]
        assert len(alerts) >= 5  # each group got its share of the storm
        assert alerts_and_digested(receiver) == 12
    stats = pipeline.stats()
    assert (stats.raised, stats.failed, stats.retried, stats.dropped) == (24, 0, 0, 0)


def within_lark_limits(times: list[float]) -> bool:
    """No more than 5 in any second, nor 100 in any minute."""
    times = sorted(times)
    per_second = all(times[index + 5] - times[index] >= 1.0 for index in range(len(times) - 5))
    return per_second and len(times) <= 100


def alerts_and_digested(receiver: LarkReceiver) -> int:
    """The errors a group heard of: one per card, and those its digest cards count."""
    total = 0
    for card in receiver.cards:
        title = card_title(card)
        total += int(title.split(" more errors")[0].split()[-1]) if "more errors since" in title else 1
    return total


async def test_when_the_alerter_is_far_behind_the_request_path_folds_errors_into_their_routes_digests(
    lark_groups: LarkGroups, write_routes: WriteRoutes
) -> None:
    routes = write_routes(
        '[[route]]\nname = "drop-scanners"\nmatch = { route = "<unmatched>" }\ndrop = true\n\n'
        '[[route]]\nname = "on-call"\nmatch = {}\nwebhook_url_env = "ONCALL_LARK_WEBHOOK"\n'
    )
    pipeline = build_pipeline(load_settings(webhook_url=lark_groups.quiet.url, routes=routes, queue_size=1))
    release = keep_the_alerter_busy()
    try:
        for index in range(1100):  # the hand-off takes 1,000 client errors; the rest are folded here
            unmatched = index % 2 == 0
            route = None if unmatched else f"/orders/{index}"
            event = ErrorEvent(
                timestamp=time.time(), method="GET", path=f"/x/{index}", route=route, status_code=404
            )
            pipeline.submit(f"GET {route} 404", event)
        folded = pipeline.stats()
        assert (folded.coalesced, folded.routed_away) == (50, 50)
    finally:
        release.set()
    assert pipeline.flush(20)
    stats = pipeline.stats()
    assert (stats.routed_away, stats.dropped) == (550, 0)
    assert lark_groups.quiet.requests == []
    assert alerts_and_digested(lark_groups.on_call) == 550
    assert json.dumps(lark_groups.on_call.cards).count("/x/") >= 2  # cards and a digest with paths


async def test_an_error_whose_fields_routes_cannot_read_still_reaches_the_default(
    lark_groups: LarkGroups, write_routes: WriteRoutes
) -> None:
    routes = write_routes(
        '[[route]]\nname = "payments-team"\nmatch = { labels.team = "payments" }\n'
        'webhook_url_env = "PAYMENTS_LARK_WEBHOOK"\nwebhook_secret_env = "PAYMENTS_LARK_SECRET"\n'
    )
    pipeline = build_pipeline(load_settings(webhook_url=lark_groups.quiet.url, routes=routes))
    hostile = ErrorEvent(timestamp=time.time(), source="relay", subject="disk full", labels=(("team", 7),))  # type: ignore[arg-type]
    pipeline.report(hostile)
    assert pipeline.flush(10)
    [card] = lark_groups.quiet.cards
    assert "disk full" in card_text(card)
    assert lark_groups.payments.requests == []
