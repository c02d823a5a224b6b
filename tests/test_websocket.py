"""Websockets in process (Starlette's TestClient): an exception from the endpoint alerts, closes do not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware._sources.websocket import spoken_duration
from lark_alert_middleware.testing import LarkReceiver

from .apps import beyond_requests_app
from .conftest import card_title, find_middleware, shown_text


@pytest.fixture
def app(lark_receiver: LarkReceiver) -> FastAPI:
    return beyond_requests_app(webhook_url=lark_receiver.url)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def settled(app: FastAPI) -> int:
    """Wait until every alert raised so far is decided and posted; how many were raised."""
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(10)
    return alerter.stats().raised


def crash(client: TestClient, path: str = "/ws/orders/42", **headers: str) -> None:
    with (
        pytest.raises(ValueError, match="has no updates"),
        client.websocket_connect(path, headers=headers) as websocket,
    ):
        websocket.send_text("hello")
        assert websocket.receive_text() == "order 42: hello"
        websocket.send_text("crash")
        websocket.receive_text()


def test_an_exception_in_the_endpoint_alerts_with_the_connection(
    app: FastAPI, client: TestClient, lark_receiver: LarkReceiver
) -> None:
    crash(client, **{"x-request-id": "ws-req-9"})
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "ValueError in websocket /ws/orders/{order_id}"
    assert card["header"]["template"] == "red"
    text = shown_text(card)
    assert "WEBSOCKET /ws/orders/{order_id} ValueError" in text  # the fingerprint
    assert "WEBSOCKET /ws/orders/42" in text  # the path
    assert "ws-req-9" in text
    assert "**Client**\ntestclient:50000" in text
    assert "Connected for" in text
    assert "2 received, 1 sent" in text
    assert "order 42 has no updates" in text and "Traceback" in text


def test_repeats_of_a_failing_endpoint_make_one_card(
    app: FastAPI, client: TestClient, lark_receiver: LarkReceiver
) -> None:
    for _ in range(3):
        crash(client)
    assert settled(app) == 3
    assert len(lark_receiver.cards) == 1


@pytest.mark.parametrize("code", [1000, 1011, 4000])
def test_the_app_closing_with_any_code_does_not_alert(
    app: FastAPI, client: TestClient, lark_receiver: LarkReceiver, code: int
) -> None:
    with client.websocket_connect("/ws/orders/1") as websocket:
        websocket.send_text(f"close {code}")
        assert websocket.receive()["code"] == code
    assert settled(app) == 0
    assert lark_receiver.requests == []


def test_a_client_that_goes_away_does_not_alert(
    app: FastAPI, client: TestClient, lark_receiver: LarkReceiver
) -> None:
    # The endpoint's receive_text() raises WebSocketDisconnect, which the TestClient hands back.
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/orders/1") as websocket:
        websocket.send_text("hello")
        websocket.receive_text()
        websocket.close(1001)
    assert settled(app) == 0
    assert lark_receiver.requests == []


def test_a_failure_before_accepting_says_so(lark_receiver: LarkReceiver) -> None:
    app = FastAPI()

    @app.websocket("/ws/feed")
    async def feed(websocket: WebSocket) -> None:
        raise PermissionError("no feed for this token")

    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url)
    with TestClient(app) as client, pytest.raises(PermissionError):
        client.websocket_connect("/ws/feed").__enter__()
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "PermissionError in websocket /ws/feed"
    assert "before the connection was accepted" in shown_text(card)


def test_excluded_paths_exclude_websockets(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url, exclude_paths=("/ws/*",))
    with TestClient(app) as client:
        crash(client)
    assert settled(app) == 0


def test_a_disconnect_raised_out_of_a_raw_app_is_a_close(lark_receiver: LarkReceiver) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        raise WebSocketDisconnect(message.get("code", 1000))

    middleware = LarkAlertMiddleware(raw, webhook_url=lark_receiver.url)
    client = TestClient(middleware)  # no lifespan: the raw app speaks only websocket
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/raw") as websocket:
        websocket.close(1000)
    assert middleware.alerter is not None and middleware.alerter.flush(10)
    assert middleware.alerter.stats().raised == 0


@pytest.mark.anyio
async def test_other_scope_types_pass_through_untouched() -> None:
    received: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append((scope, receive, send))

    middleware = LarkAlertMiddleware(app)
    scope: Scope = {"type": "webtransport", "path": "/wt"}

    async def receive() -> Message:
        return {"type": "webtransport.connect"}

    async def send(message: Message) -> None:
        return None

    await middleware(scope, receive, send)
    assert received == [(scope, receive, send)]


@pytest.mark.parametrize(
    ("seconds", "spoken"),
    [
        (0.42, "0.4 s"),
        (59.4, "59.4 s"),
        (754.2, "12 min 34 s"),
        (3 * 3600 + 301, "3 h 5 min"),
        (188000, "2 d 4 h"),
    ],
)
def test_how_long_a_connection_lived_reads_as_a_person_would_say_it(seconds: float, spoken: str) -> None:
    assert spoken_duration(seconds) == spoken
