"""Floods an outsider can mint: bounded fingerprints, and the real server error still gets through first."""

from __future__ import annotations

import html
import random
import string
from dataclasses import replace
from typing import Any

import anyio
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware._card.sample import sample_event
from lark_alert_middleware._pipeline.digest import Digest
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import (
    SHARED_REDIS_URL,
    card_text,
    card_title,
    client_for,
    find_middleware,
    keep_the_alerter_busy,
    wait_until,
)

pytestmark = pytest.mark.anyio


def fingerprint_on(card: dict[str, Any]) -> str:
    """The fingerprint the card's note shows."""
    return str(card["elements"][-1]["elements"][0]["content"]).split(" · ")[0]


async def broken(request: Request) -> PlainTextResponse:
    return PlainTextResponse("down", status_code=500)


def random_method(length: int) -> str:
    return "".join(random.choices(string.ascii_uppercase, k=length))


async def test_random_methods_to_unknown_paths_are_one_error_and_mint_no_keys(
    lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    app = failing_app(
        webhook_url=lark_receiver.url, redis_url=SHARED_REDIS_URL, redis_key_prefix=redis_prefix
    )
    async with client_for(app) as client:
        for index in range(300):
            method = random_method(8000 if index % 10 == 0 else 12)
            assert (await client.request(method, f"/scan/{index}")).status_code == 404
        assert (await client.get("/boom/value")).status_code == 500
        middleware = find_middleware(app)
        alerter = middleware.alerter
        assert alerter is not None and alerter.flush(10)
    fingerprints = sorted(fingerprint_on(card) for card in lark_receiver.cards)
    assert fingerprints == ["GET /boom/{kind} 500 ValueError", "OTHER <unmatched> 404"]
    assert alerter.stats().raised == 301
    assert len(middleware._known_errors) <= 2 and len(alerter.windows) == 2
    keys = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        minted = [key for key in keys.scan_iter(match=f"{redis_prefix}*") if b":rate:" not in key]
    finally:
        keys.close()
    assert len(minted) <= 3 * 2  # window, repeats and last-alert keys of two errors at most


def test_a_method_the_route_declares_is_its_own_error() -> None:
    with LarkReceiver() as lark:

        async def purge(request: Request) -> PlainTextResponse:
            return PlainTextResponse("cache backend down", status_code=503)

        app = LarkAlertMiddleware(
            Starlette(routes=[Route("/cache", purge, methods=["PURGE"])]), webhook_url=lark.url
        )
        with TestClient(app) as client:
            assert client.request("PURGE", "/cache").status_code == 503
            assert client.request("PROPFIND", "/cache").status_code == 405
        cards = lark.wait_for_cards(2)
    assert sorted(card_title(card) for card in cards) == ["405 OTHER /cache", "503 PURGE /cache"]
    [other] = [card for card in cards if card_title(card) == "405 OTHER /cache"]
    assert "**Request**\nOTHER (PROPFIND) /cache" in html.unescape(card_text(other)).replace("\\n", "\n")


async def test_a_mount_with_parameters_is_one_error_whatever_the_values(lark_receiver: LarkReceiver) -> None:
    async def orders(request: Request) -> PlainTextResponse:
        return PlainTextResponse("orders down", status_code=500)

    tenant_routes = [Route("/orders/{order_id}", orders)]
    app = LarkAlertMiddleware(
        Starlette(routes=[Mount("/{tenant}/api", routes=tenant_routes)]), webhook_url=lark_receiver.url
    )
    async with client_for(app) as client:
        for tenant in ("acme", "globex", "initech", "umbrella"):
            assert (await client.get(f"/{tenant}/api/orders/7")).status_code == 500
    assert app.alerter is not None and app.alerter.flush(5)
    [card] = lark_receiver.cards
    assert card_title(card) == "500 GET /{tenant}/api/orders/{order_id}"
    assert app.alerter.stats().deduplicated == 3


@pytest.mark.parametrize(
    ("mounts", "paths", "fingerprint"),
    [
        (
            [Mount("/n/{org:int}", routes=[Route("/orders", broken)])],
            ["/n/7/orders", "/n/007/orders"],
            "GET /n/{org:int}/orders 500",
        ),
        (
            [Mount("/u/{id:uuid}", routes=[Route("/x", broken)])],
            ["/u/0b8f6f2c-5c5e-4c8e-9a55-0a7e4a1f3c11/x", "/u/1c8f6f2c-5c5e-4c8e-9a55-0a7e4a1f3c22/x"],
            "GET /u/{id:uuid}/x 500",
        ),
        (
            [Mount("/p/{rest:path}", app=Starlette(routes=[Route("/end", broken)]))],
            ["/p/a/b/end", "/p/c/end"],
            "GET /p/{rest:path}/end 500",
        ),
        (
            [Mount("/v1/{order_id}", routes=[Route("/orders/{order_id}", broken)])],
            ["/v1/1/orders/2", "/v1/3/orders/4"],
            "GET /v1/{order_id}/orders/{order_id} 500",
        ),
        (
            [Mount("/{tenant}", routes=[Route("/api", broken)])],
            ["/api/api", "/acme/api"],
            "GET /{tenant}/api 500",
        ),
        (
            [
                Host(
                    "{sub}.example.test",
                    app=Router(routes=[Mount("/api", routes=[Route("/orders", broken)])]),
                )
            ],
            ["http://a.example.test/api/orders", "http://b.example.test/api/orders"],
            "GET /api/orders 500",
        ),
    ],
    ids=["int", "uuid", "path", "same-name", "literal-value", "host"],
)
async def test_any_mount_s_parameters_make_one_error(
    lark_receiver: LarkReceiver, mounts: list[Any], paths: list[str], fingerprint: str
) -> None:
    app = LarkAlertMiddleware(Starlette(routes=mounts), webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        for path in paths:
            assert (await client.get(path)).status_code == 500
    assert app.alerter is not None and app.alerter.flush(5)
    assert [fingerprint_on(card) for card in lark_receiver.cards] == [fingerprint]
    assert app.alerter.stats().deduplicated == len(paths) - 1


def test_a_server_error_goes_before_client_errors_already_waiting(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, queue_size=3, max_in_flight=1)
    lark_receiver.hold()  # the first post waits, as on a slow network, until everything is decided
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/status/400")
        lark_receiver.wait_for_in_flight(1)
        for status in range(401, 412):
            client.get(f"/status/{status}")
        client.get("/boom/value")
        alerter = find_middleware(app).alerter
        assert alerter is not None
        # One client error posting, three queued, the other eight and the one the 500 pushed out folded.
        wait_until(lambda: alerter.stats().coalesced == 9, what="every error decided")
        lark_receiver.release()
        assert alerter.flush(30)
    titles = [card_title(card) for card in lark_receiver.cards]
    assert titles[:2] == ["400 GET /status/{status}", "500 GET /boom/{kind}"]
    [digest] = [card for card in lark_receiver.cards if "more errors since" in card_title(card)]
    assert digest["header"]["template"] == "orange"  # only client errors were folded
    assert card_title(digest).startswith("9 more errors since")
    assert len(lark_receiver.cards) == 1 + 1 + 2 + 1  # every error accounted for


def test_a_digest_holding_server_errors_is_red_names_them_first_and_mentions(
    lark_receiver: LarkReceiver,
) -> None:
    app = failing_app(webhook_url=lark_receiver.url, queue_size=1, max_in_flight=1, mention="ou_oncall")
    lark_receiver.hold()
    with TestClient(app) as client:
        client.get("/status/400")
        lark_receiver.wait_for_in_flight(1)
        for status in range(401, 430):
            client.get(f"/status/{status}")
        for status in (500, 502, 503):
            client.get(f"/status/{status}")
        alerter = find_middleware(app).alerter
        assert alerter is not None
        # 400 posting, 500 queued (it pushed out the queued 401); everything else folded.
        wait_until(lambda: alerter.stats().coalesced == 31, what="every error decided")
        lark_receiver.release()
        assert alerter.flush(30)
    titles = [card_title(card) for card in lark_receiver.cards]
    assert titles[:2] == ["400 GET /status/{status}", "500 GET /status/{status}"]
    [digest] = [card for card in lark_receiver.cards if "more errors since" in card_title(card)]
    assert digest["header"]["template"] == "red"
    assert digest["header"]["title"]["content"].startswith("🔴 31 more errors since")
    text = card_text(digest)
    assert "<at id=ou_oncall></at>" in text
    listed = [line for line in text.split("\\n") if "\u00d7 GET /status/{status}" in line]
    assert [line.split()[0] for line in listed[:3]] == ["🔴", "🔴", "🟠"]
    assert "GET /status/{status} 502" in listed[0] or "GET /status/{status} 503" in listed[0]


def test_a_server_error_past_the_digest_s_bound_on_kinds_is_still_listed_first() -> None:
    digest = Digest(max_kinds=16)
    for status in range(400, 420):
        client_error = replace(sample_event(), status_code=status, path=f"/status/{status}", exception=None)
        digest.add(f"GET /status/{status} {status}", client_error)
    digest.add("GET /pay 500 ValueError", replace(sample_event(), path="/pay"))
    summary = digest.take()
    assert summary is not None and summary.has_errors
    assert summary.lines[0].fingerprint == "GET /pay 500 ValueError"
    assert len(summary.lines) == 16 and summary.total == 21
    assert sum(line.count for line in summary.lines) + summary.uncounted_kinds_total == 21


async def test_a_real_error_amid_concurrent_junk_gets_its_own_card(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client, anyio.create_task_group() as group:
        for index in range(200):
            group.start_soon(client.request, random_method(20), f"/junk/{index}")
        group.start_soon(client.get, "/boom/order")
    cards = lark_receiver.wait_for_cards(2)
    assert sorted(fingerprint_on(card) for card in cards) == [
        "GET /boom/{kind} 500 tests.apps.OrderError",
        "OTHER <unmatched> 404",
    ]


def test_a_server_error_is_handed_off_first_even_when_client_errors_overflow(
    lark_receiver: LarkReceiver,
) -> None:
    alerter = LarkAlertMiddleware(failing_app(), webhook_url=lark_receiver.url, queue_size=1).alerter
    assert alerter is not None
    client_error = replace(sample_event(), status_code=404, exception=None)
    release = keep_the_alerter_busy()  # what is handed off waits, as behind a slow Redis
    try:
        for index in range(1100):  # more than the hand-off holds
            alerter.submit(f"GET /junk/{index} 404", client_error)
        alerter.submit("POST /pay 500 ZeroDivisionError", sample_event())
    finally:
        release.set()
    assert alerter.flush(30)
    first = lark_receiver.cards[0]
    assert card_title(first) == "500 POST /orders/{order_id}/split"  # claimed and posted before any 404
    assert alerter.stats().raised == 1101 and alerter.stats().coalesced >= 100
