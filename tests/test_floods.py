"""Floods an outsider can mint: bounded fingerprints, and the real server error still gets through first."""

from __future__ import annotations

import random
import string
from typing import Any

import anyio
import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware.digest import Digest
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import SHARED_REDIS_URL, card_text, card_title, find_middleware

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://test"
    )


def fingerprint_on(card: dict[str, Any]) -> str:
    """The fingerprint the card's note shows."""
    return str(card["elements"][-1]["elements"][0]["content"]).split(" · ")[0]


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
        [*cards] = lark.wait_for_cards(2)
    assert sorted(card_title(card) for card in cards) == ["405 OTHER /cache", "503 PURGE /cache"]


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


def test_a_server_error_goes_before_client_errors_already_waiting(make_lark_receiver: Any) -> None:
    lark: LarkReceiver = make_lark_receiver(delay=0.2)
    app = failing_app(webhook_url=lark.url, queue_size=3, max_in_flight=1)
    with TestClient(app, raise_server_exceptions=False) as client:
        for status in range(400, 412):
            client.get(f"/status/{status}")
        client.get("/boom/value")
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.flush(30)
    titles = [card_title(card) for card in lark.cards]
    assert "500 GET /boom/{kind}" in titles[:2], titles  # at most one client error was already posting
    [digest] = [card for card in lark.cards if "more errors since" in card_title(card)]
    assert digest["header"]["template"] == "orange"  # only client errors were folded
    singles = len(lark.cards) - 1
    assert singles + int(card_title(digest).split()[0]) == 13  # every error accounted for


def test_a_digest_holding_server_errors_is_red_names_them_first_and_mentions(make_lark_receiver: Any) -> None:
    lark: LarkReceiver = make_lark_receiver(delay=0.2)
    app = failing_app(webhook_url=lark.url, queue_size=1, max_in_flight=1, mention="ou_oncall")
    with TestClient(app) as client:
        for status in range(400, 430):
            client.get(f"/status/{status}")
        for status in (500, 502, 503):
            client.get(f"/status/{status}")
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.flush(30)
    [digest] = [card for card in lark.cards if "more errors since" in card_title(card)]
    assert digest["header"]["template"] == "red"
    assert digest["header"]["title"]["content"].startswith("🔴 ")
    text = card_text(digest)
    assert "<at id=ou_oncall></at>" in text
    listed = [line for line in text.split("\\n") if "\u00d7 GET /status/{status}" in line]
    assert listed[0].startswith("🔴 ") and "GET /status/{status} 50" in listed[0]


def test_a_server_error_past_the_digest_s_bound_on_kinds_is_still_listed_first() -> None:
    digest = Digest(max_kinds=16)
    for status in range(400, 420):
        digest.add(f"GET /status/{status} {status}", status, f"/status/{status}", is_error=False)
    digest.add("GET /pay 500 ValueError", 500, "/pay", is_error=True)
    summary = digest.take()
    assert summary is not None and summary.has_errors
    assert summary.lines[0].fingerprint == "GET /pay 500 ValueError"
    assert len(summary.lines) == 16 and summary.total == 21
    assert sum(line.count for line in summary.lines) + summary.uncounted_kinds_total == 21


async def test_concurrent_junk_does_not_delay_a_real_error(lark_receiver: LarkReceiver) -> None:
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
