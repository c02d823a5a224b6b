"""The pipeline end to end through real uvicorn processes, real Redis and the Lark-compatible receiver."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import httpx
import pytest

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, card_text, card_title, wait_until
from .conftest import Server

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]


async def hammer(url: str, paths: list[str], concurrency: int = 30) -> list[int]:
    """Send GETs concurrently; returns the statuses in order.

    No keep-alive: after an unhandled exception uvicorn closes the connection (with or without
    this middleware), and a pooled connection reused at that moment fails on the client side.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(path: str) -> int:
            async with semaphore:
                return (await client.get(path)).status_code

        return list(await asyncio.gather(*(one(path) for path in paths)))


def settle(server: Server) -> str:
    """Stop the server gracefully: pending alerts are flushed at lifespan shutdown."""
    return server.terminate()


def test_thirty_concurrent_identical_errors_raise_one_alert(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        LARK_WEBHOOK_URL=lark_receiver.url, REDIS_URL=SHARED_REDIS_URL, LARK_ALERT_REDIS_PREFIX=redis_prefix
    )
    statuses = asyncio.run(hammer(server.url, [f"/items/{index}" for index in range(30)]))
    assert statuses == [404] * 30
    settle(server)
    assert [card_title(card) for card in lark_receiver.cards] == ["404 GET /items/{item_id}"]


def test_four_workers_sharing_redis_raise_exactly_one_alert(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        workers=4,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
    )
    statuses = asyncio.run(
        hammer(server.url, [f"/boom/value?n={index}" for index in range(400)], concurrency=40)
    )
    assert statuses == [500] * 400
    output = settle(server)
    assert len(lark_receiver.cards) == 1, output
    assert card_title(lark_receiver.cards[0]) == "500 GET /boom/{kind}"


def test_distinct_errors_alert_separately_and_repeats_after_the_window(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_RATE_LIMIT="1",
    )
    asyncio.run(hammer(server.url, ["/items/1", "/items/2", "/items/3", "/conflict", "/boom/value"]))
    lark_receiver.wait_for_cards(3)
    with httpx.Client(base_url=server.url) as client:

        def second_conflict_alert() -> bool:
            client.get("/conflict")
            return sum(card_title(card) == "409 GET /conflict" for card in lark_receiver.cards) >= 2

        # The window is one second: keep failing until the next alert for the same error arrives.
        wait_until(second_conflict_alert, timeout=15, interval=0.05, what="an alert after the window")
    settle(server)
    titles = [card_title(card) for card in lark_receiver.cards]
    assert titles.count("404 GET /items/{item_id}") == 1
    assert titles.count("500 GET /boom/{kind}") == 1
    assert titles.count("409 GET /conflict") == 2
    second = [card for card in lark_receiver.cards if card_title(card) == "409 GET /conflict"][1]
    assert "Repeated" in card_text(second)


def test_embedded_in_process_dedup_works_without_redis(serve: Serve, lark_receiver: LarkReceiver) -> None:
    server = serve(LARK_WEBHOOK_URL=lark_receiver.url)
    asyncio.run(hammer(server.url, ["/teapot"] * 50))
    settle(server)
    assert [card_title(card) for card in lark_receiver.cards] == ["418 GET /teapot"]


def test_signed_alerts_are_accepted_by_a_verifying_webhook(serve: Serve, make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(secret="s3cret-value")  # type: ignore[operator]
    server = serve(LARK_WEBHOOK_URL=lark.url, LARK_WEBHOOK_SECRET="s3cret-value")
    asyncio.run(hammer(server.url, ["/teapot"]))
    settle(server)
    assert [request.answer_code for request in lark.requests] == [0]


def test_secrets_in_the_request_never_reach_the_card(serve: Serve, lark_receiver: LarkReceiver) -> None:
    server = serve(LARK_WEBHOOK_URL=lark_receiver.url)
    httpx.post(
        f"{server.url}/echo-fail?api_key=qk-1234567890&page=2",
        json={"user": "ann", "password": "pw-hunter2-xyz", "profile": {"access_token": "at-987654321"}},
        headers={"Authorization": "Bearer tok-abcdefghijk", "Cookie": "session=sess-777777777"},
    )
    settle(server)
    [card] = lark_receiver.cards
    text = card_text(card)
    for secret in ("qk-1234567890", "pw-hunter2-xyz", "at-987654321", "tok-abcdefghijk", "sess-777777777"):
        assert secret not in text
    assert "[redacted password]" in text and "page=2" in text


def test_a_5_mib_streamed_response_arrives_byte_identical(serve: Serve, lark_receiver: LarkReceiver) -> None:
    size = 5 * 1024 * 1024
    expected = hashlib.sha256((bytes(range(256)) * 256 * 80)[:size]).hexdigest()
    server = serve(LARK_WEBHOOK_URL=lark_receiver.url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for status in (200, 503):
            digest, received = hashlib.sha256(), 0
            with client.stream("GET", f"/stream/{size}?status={status}") as response:
                assert response.status_code == status
                for chunk in response.iter_raw():
                    digest.update(chunk)
                    received += len(chunk)
            assert (received, digest.hexdigest()) == (size, expected)
    settle(server)
    [card] = lark_receiver.cards
    assert card_title(card) == "503 GET /stream/{size}"
    assert "5,242,880 bytes" in card_text(card)


def test_a_slow_webhook_does_not_delay_error_responses(serve: Serve, make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(delay=5.0)  # type: ignore[operator]
    server = serve(LARK_WEBHOOK_URL=lark.url, LARK_ALERT_SHUTDOWN_TIMEOUT="10")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/teapot").status_code == 418
        lark.wait_for_in_flight(1)  # the webhook is now holding the first alert for 5 seconds
        for path in ("/conflict", "/items/1", "/boom/value"):
            assert client.get(path).status_code in (409, 404, 500)
        assert lark.requests == []  # every response came back while the webhook still held the first post
    settle(server)
    assert len(lark.cards) == 4
