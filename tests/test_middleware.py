"""The middleware at unit level, through httpx.ASGITransport: what it captures and what it leaves alone."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from lark_alert_middleware import ErrorEvent, LarkAlertMiddleware
from lark_alert_middleware._sources.routes import route_template
from lark_alert_middleware.testing import LarkReceiver

from .apps import OrderError, failing_app
from .conftest import SHARED_REDIS_URL, RedisServer, card_text, card_title, client_for, find_middleware

pytestmark = pytest.mark.anyio


async def test_a_successful_request_raises_no_alert(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        response = await client.get("/ok")
    assert response.json() == {"ok": True}
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().raised == 0
    assert lark_receiver.requests == []


async def test_a_404_raises_one_card_with_the_route_template(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        response = await client.get("/items/7?color=red", headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 404
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "404 GET /items/{item_id}"
    assert card["header"]["template"] == "orange"
    text = card_text(card)
    assert "req&#45;abc&#45;123" in text  # the request id, markdown-escaped
    assert "color=red" in text
    assert "item 7 not found" in text  # the response body excerpt


async def test_an_unhandled_exception_is_reraised_unchanged_and_alerted_red(
    lark_receiver: LarkReceiver,
) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    seen: list[BaseException] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except BaseException as error:
            seen.append(error)
            raise

    async with client_for(outer) as client:
        response = await client.get("/boom/order")
    assert response.status_code == 500
    assert len(seen) == 1 and type(seen[0]) is OrderError and str(seen[0]) == "order failed: order"
    [card] = lark_receiver.wait_for_cards(1)
    assert card["header"]["template"] == "red"
    assert card_title(card) == "500 GET /boom/{kind}"
    assert "tests.apps.OrderError" in card_text(card)
    assert "Traceback" in card_text(card)


async def test_the_request_body_is_teed_not_consumed(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, max_body_bytes=64)
    payload = b'{"quantity": 3, "note": "' + b"x" * 500 + b'"}'
    async with client_for(app) as client:
        response = await client.post(
            "/echo-fail", content=payload, headers={"content-type": "application/json"}
        )
    assert response.json() == {"received": len(payload)}  # the app read every byte
    [card] = lark_receiver.wait_for_cards(1)
    text = card_text(card)
    assert f"first 64 of {len(payload)} bytes" in text
    assert '\\"quantity\\": 3' in text


async def test_statuses_outside_the_configured_set_do_not_alert(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, status_codes="500-599")
    async with client_for(app) as client:
        assert (await client.get("/items/1")).status_code == 404
        assert (await client.get("/conflict")).status_code == 409
        assert (await client.get("/boom/value")).status_code == 500
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "500 GET /boom/{kind}"
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().raised == 1


async def test_excluded_paths_never_alert(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, exclude_paths="/items/*,/conflict")
    async with client_for(app) as client:
        await client.get("/items/1")
        await client.get("/conflict")
        await client.get("/teapot")
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "418 GET /teapot"


async def test_a_disabled_middleware_is_a_pass_through(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, enabled=False)
    async with client_for(app) as client:
        assert (await client.get("/items/1")).status_code == 404
    assert find_middleware(app).alerter is None
    assert lark_receiver.requests == []


async def test_a_custom_fingerprint_groups_as_told(lark_receiver: LarkReceiver) -> None:
    def by_status_only(event: ErrorEvent) -> str:
        return f"status {event.status_code}"

    app = failing_app(webhook_url=lark_receiver.url, fingerprint=by_status_only)
    async with client_for(app) as client:
        await client.get("/items/1")
        await client.get("/missing-entirely")
    [card] = lark_receiver.wait_for_cards(1)
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().deduplicated == 1
    assert "status 404" in card_text(card)


async def test_a_failing_fingerprint_function_falls_back_to_the_default(lark_receiver: LarkReceiver) -> None:
    def broken(event: ErrorEvent) -> str:
        raise RuntimeError("bug in user code")

    app = failing_app(webhook_url=lark_receiver.url, fingerprint=broken)
    async with client_for(app) as client:
        assert (await client.get("/items/1")).status_code == 404
    [card] = lark_receiver.wait_for_cards(1)
    assert "GET /items/{item_id} 404" in card_text(card)


async def test_thirty_concurrent_identical_errors_raise_one_alert(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client, anyio.create_task_group() as group:
        for index in range(30):
            group.start_soon(client.get, f"/items/{index}")
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert len(lark_receiver.cards) == 1
    assert alerter.stats().raised == 30
    assert alerter.stats().deduplicated == 29


async def test_distinct_errors_alert_separately(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        for path in (
            "/items/1",
            "/items/2",
            "/boom/value",
            "/boom/order",
            "/conflict",
            "/nowhere",
            "/teapot",
        ):
            await client.get(path)
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    titles = sorted(card_title(card) for card in lark_receiver.cards)
    assert titles == [
        "404 GET /items/{item_id}",
        "404 GET /nowhere",
        "409 GET /conflict",
        "418 GET /teapot",
        "500 GET /boom/{kind}",
        "500 GET /boom/{kind}",
    ]


async def test_unmatched_paths_share_one_fingerprint(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        for path in ("/wp-login.php", "/.env", "/admin"):
            await client.get(path)
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert len(lark_receiver.cards) == 1
    assert "GET <unmatched> 404" in card_text(lark_receiver.cards[0])


async def test_rate_limit_zero_alerts_every_time(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, rate_limit=0)
    async with client_for(app) as client:
        for index in range(3):
            await client.get(f"/items/{index}")
    assert len(lark_receiver.wait_for_cards(3)) == 3


def test_route_templates_include_mount_prefixes() -> None:
    captured: dict[str, str | None] = {}

    async def endpoint(request: Any) -> PlainTextResponse:
        captured["template"] = None
        return PlainTextResponse("x", status_code=500)

    class Spy:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                captured["template"] = route_template(scope)

    inner = Starlette(routes=[Route("/items/{item_id:int}", endpoint)])
    app = Spy(Starlette(routes=[Mount("/v1", app=inner), Mount("/static", app=PlainTextResponse("s", 404))]))
    client = TestClient(app)
    client.get("/v1/items/3")
    assert captured["template"] == "/v1/items/{item_id:int}"
    client.get("/v1/nothing-here")
    assert captured["template"] == "/v1/{path}"
    client.get("/static/logo.png")
    assert captured["template"] == "/static/{path}"
    client.get("/elsewhere")
    assert captured["template"] is None


async def test_one_route_mounted_twice_is_two_errors_and_repeats_of_each_are_counted(
    lark_receiver: LarkReceiver,
) -> None:
    async def broken(request: Any) -> PlainTextResponse:
        return PlainTextResponse("down", status_code=503)

    shared = [Route("/status", broken)]
    app = LarkAlertMiddleware(
        Starlette(routes=[Mount("/v1", routes=shared), Mount("/v2", routes=shared)]),
        webhook_url=lark_receiver.url,
    )
    async with client_for(app) as client:
        for path in ("/v1/status", "/v2/status", "/v1/status", "/v2/status", "/v1/status"):
            assert (await client.get(path)).status_code == 503
    assert app.alerter is not None and app.alerter.flush(5)
    assert sorted(card_title(card) for card in lark_receiver.cards) == [
        "503 GET /v1/status",
        "503 GET /v2/status",
    ]
    assert app.alerter.stats().deduplicated == 3


async def test_repeats_are_counted_in_the_window_the_alerter_opens_and_not_in_one_it_dropped(
    lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    # Redis keeps every window: only the request path's table (ten windows) has to drop one.
    app = failing_app(
        webhook_url=lark_receiver.url,
        dedup_capacity=10,
        redis_url=SHARED_REDIS_URL,
        redis_key_prefix=redis_prefix,
    )
    async with client_for(app) as client:
        for _ in range(4):  # the first is captured; its window opens; the next three find it
            assert (await client.get("/status/409")).status_code == 409
        alerter = find_middleware(app).alerter
        assert alerter is not None

        def captured() -> int:  # errors that went to the alerter, not repeats counted on the way
            return alerter.counters.snapshot().raised

        assert (captured(), alerter.stats().deduplicated) == (1, 3)
        for status in (*range(400, 409), 410):  # ten more windows: 409's, the oldest, is dropped
            await client.get(f"/status/{status}")
        assert alerter.flush(10)
        assert captured() == 11
        # Not counted in the dropped window: captured, and the shared store says it is a repeat.
        assert (await client.get("/status/409")).status_code == 409
        assert alerter.flush(10)
        assert (captured(), alerter.stats().deduplicated) == (12, 4)
        assert (await client.get("/status/409")).status_code == 409  # in the window opened again
        assert (captured(), alerter.stats().deduplicated) == (12, 5)
    assert [card_title(card) for card in lark_receiver.cards].count("409 GET /status/{status}") == 1


def test_websockets_still_work_through_the_middleware() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app.add_middleware(LarkAlertMiddleware)
    with TestClient(app).websocket_connect("/ws") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"


def test_without_a_webhook_alerts_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    app = failing_app()
    with caplog.at_level("WARNING", logger="lark_alert_middleware"), TestClient(app) as client:
        client.get("/items/5", headers={"X-Request-ID": "log-me-1"})
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.flush(5)
    messages = [record.getMessage() for record in caplog.records]
    assert any("LARK_WEBHOOK_URL is not set" in message for message in messages)
    assert any("404 GET /items/{item_id}" in m and "log-me-1" in m for m in messages)


async def test_a_traced_request_gets_a_trace_button(lark_receiver: LarkReceiver) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    app = failing_app(webhook_url=lark_receiver.url, trace_url="https://traces.example.com/trace/{trace_id}")
    async with client_for(app) as client:
        await client.get("/teapot", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    [card] = lark_receiver.wait_for_cards(1)
    buttons = [
        action for element in card["elements"] if element["tag"] == "action" for action in element["actions"]
    ]
    assert [button["url"] for button in buttons] == [f"https://traces.example.com/trace/{trace_id}"]


async def test_the_scrub_hook_runs_on_every_text(lark_receiver: LarkReceiver) -> None:
    app = failing_app(
        webhook_url=lark_receiver.url, scrub=lambda text: text.replace("ann@example.com", "<email>")
    )
    async with client_for(app) as client:
        await client.post("/echo-fail?contact=ann@example.com", json={"email": "ann@example.com"})
    [card] = lark_receiver.wait_for_cards(1)
    assert "ann@example.com" not in card_text(card)
    assert card_text(card).count("&#60;email&#62;") >= 2


async def test_a_reused_buffer_is_captured_as_it_was_sent(lark_receiver: LarkReceiver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        buffer = bytearray(b"A" * 100)
        await send(
            {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": memoryview(buffer), "more_body": True})
        buffer[:] = b"C" * 100  # the app reuses its buffer for the next chunk
        await send({"type": "http.response.body", "body": memoryview(buffer), "more_body": False})

    sent: list[bytes] = []

    async def server_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.append(bytes(message["body"]))  # a server writes each chunk out before the next

    async def server_receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Scope = {"type": "http", "method": "GET", "path": "/stream", "headers": [], "query_string": b""}
    await LarkAlertMiddleware(app, webhook_url=lark_receiver.url)(scope, server_receive, server_send)
    assert b"".join(sent) == b"A" * 100 + b"C" * 100
    [card] = lark_receiver.wait_for_cards(1)
    assert "A" * 100 + "C" * 100 in card_text(card)


def test_start_up_completes_once_the_alerter_is_connected(own_redis: RedisServer) -> None:
    app = failing_app(redis_url=own_redis.url)
    observer = redis.Redis(port=own_redis.port)
    with TestClient(app):
        # The alerter thread's connection was opened before the app took its first request.
        assert len(observer.client_list()) >= 2
    observer.close()
