"""Failures that are not failing responses, through real uvicorn: background tasks, broken streams,
websockets, and a start-up that fails (once, and at every restart of a crash loop)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lark_alert_middleware._pipeline.dedup import dedup_key
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, card_title, free_port, shown_text
from .conftest import Process, Server

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]
Spawn = Callable[..., Process]

SOURCES_APP = "tests.integration.sources_app:app"
STARTUP_FAILURE_TITLE = (
    "start-up failed: tests.integration.startup_app.MigrationError: "
    "migration 0042 failed: column orders.total does not exist"
)
# uvicorn's exit status when the app's start-up failed.
STARTUP_FAILURE = 3


def note(card: dict[str, object]) -> str:
    """The card's last line: its fingerprint."""
    elements = card["elements"]
    assert isinstance(elements, list)
    return str(elements[-1]["elements"][0]["content"])


def websocket_url(server: Server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def test_a_background_task_failing_after_a_200_makes_one_card_with_the_tasks_traceback(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=SOURCES_APP, LARK_WEBHOOK_URL=lark_receiver.url)
    # No keep-alive: uvicorn closes a connection once its app raised, even after a whole response.
    with httpx.Client(
        base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        for _ in range(3):
            assert client.post("/export").json() == {"queued": True}
    output = server.terminate()
    assert len(lark_receiver.cards) == 1, output
    [card] = lark_receiver.cards
    assert card_title(card) == "RuntimeError in background task after 200 POST /export"
    assert note(card) == "POST /export after response RuntimeError"
    text = shown_text(card)
    assert "the export could not be written" in text
    assert 'in write_file\n    raise RuntimeError("the export could not be written")' in text


def test_a_stream_failing_after_a_200_start_is_reported_as_failing_while_streaming(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=SOURCES_APP, LARK_WEBHOOK_URL=lark_receiver.url)
    with httpx.Client(base_url=server.url, timeout=30) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/stream/broken")  # the first part arrives, then the connection drops
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "RuntimeError while streaming after 200 GET /stream/broken"
    assert note(card) == "GET /stream/broken after response RuntimeError"
    assert "the stream broke after one part" in shown_text(card)


def test_an_exception_in_a_websocket_endpoint_makes_a_card_with_the_connection(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=SOURCES_APP, LARK_WEBHOOK_URL=lark_receiver.url)
    headers = {"x-request-id": "ws-live-1"}
    with connect(websocket_url(server, "/ws/orders/42"), additional_headers=headers) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "order 42: hello"
        websocket.send("crash")
        with pytest.raises(ConnectionClosed):
            websocket.recv(timeout=10)
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "ValueError in websocket /ws/orders/{order_id}"
    assert note(card) == "WEBSOCKET /ws/orders/{order_id} ValueError"
    text = shown_text(card)
    for fact in ("WEBSOCKET /ws/orders/42", "ws-live-1", "Connected for", "2 received, 1 sent", "127.0.0.1:"):
        assert fact in text
    assert "order 42 has no updates" in text and "Traceback" in text


def test_websockets_closed_by_the_app_or_left_by_the_client_make_no_card(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=SOURCES_APP, LARK_WEBHOOK_URL=lark_receiver.url)
    for code in (1000, 4000):
        with connect(websocket_url(server, "/ws/orders/1")) as websocket:
            websocket.send(f"close {code}")
            with pytest.raises(ConnectionClosed) as closed:
                websocket.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    with connect(websocket_url(server, "/ws/orders/2")) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "order 2: hello"
        websocket.close(code=1001)  # the client leaves; the endpoint's receive raises WebSocketDisconnect
    output = server.terminate()  # what was raised is delivered at shutdown, and the counters logged
    assert lark_receiver.requests == [], output
    assert "raised" not in output


def start_failing_app(spawn: Spawn, **environment: str) -> Process:
    port = str(free_port())
    return spawn(
        "uvicorn", "tests.integration.startup_app:app", "--host", "127.0.0.1", "--port", port, **environment
    )


def test_a_failed_start_up_is_delivered_before_the_server_exits(
    spawn: Spawn, lark_receiver: LarkReceiver
) -> None:
    server = start_failing_app(spawn, LARK_WEBHOOK_URL=lark_receiver.url)
    assert server.process.wait(timeout=60) == STARTUP_FAILURE
    # Looked at once the process has exited, without waiting: the card was in before.
    [card] = lark_receiver.cards
    assert card_title(card) == STARTUP_FAILURE_TITLE
    assert note(card) == "STARTUP tests.integration.startup_app.MigrationError"
    assert "in lifespan" in shown_text(card)  # the traceback
    assert "Application startup failed. Exiting." in server.output()


def test_a_crash_loop_sends_one_card_per_window_and_the_next_counts_the_restarts(
    spawn: Spawn, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    environment = {
        "LARK_WEBHOOK_URL": lark_receiver.url,
        "REDIS_URL": SHARED_REDIS_URL,
        "LARK_ALERT_REDIS_PREFIX": redis_prefix,
        "LARK_ALERT_RATE_LIMIT": "3600",
    }

    def restart() -> None:
        process = start_failing_app(spawn, **environment)
        assert process.process.wait(timeout=60) == STARTUP_FAILURE, process.output()

    restart()
    restart()
    assert [card_title(card) for card in lark_receiver.cards] == [STARTUP_FAILURE_TITLE]
    key = dedup_key("orders", "production", "STARTUP tests.integration.startup_app.MigrationError")
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        assert client.delete(f"{redis_prefix}{{{key}}}:window") == 1  # the window ends
    finally:
        client.close()
    restart()
    first, second = lark_receiver.cards
    assert card_title(second) == STARTUP_FAILURE_TITLE
    assert "Repeated 1 times" in shown_text(second)  # the restart inside the window
    assert "Repeated" not in shown_text(first)
