"""Long-lived and broken streams: incremental delivery, failures after the start, clients that leave."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_text, card_title, find_middleware, wait_until
from ..servers import Server
from .app import BLOCK, build_app
from .conftest import Pair, Servers, settle_alerts, uvicorn_client, wait_for_card
from .raw_asgi import exchange

BACKENDS = ["asyncio", "trio"]
# Statuses no other test uses: their cards mark the point where earlier errors are all decided.
SENTINELS = {200: 594, 503: 596}


def test_server_sent_events_are_identical(pair: Pair) -> None:
    seen = pair.same("GET", "/events?count=20")
    assert seen.header("content-type") == "text/event-stream; charset=utf-8"
    assert seen.body.count(b"event: tick") == 20


def test_server_sent_events_arrive_one_by_one_through_uvicorn(servers: Servers) -> None:
    """Each event is produced only after the client acknowledged the previous one: a buffer would hang."""
    for server in (servers.bare, servers.observed):
        received: list[int] = []
        with (
            uvicorn_client(server.url) as client,
            uvicorn_client(server.url) as acks,
            client.stream("GET", "/events?count=5&lockstep=uv", timeout=10) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("id: "):
                    received.append(int(line.removeprefix("id: ")))
                    acks.post(f"/events/ack/uv/{received[-1]}").raise_for_status()
        assert received == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_sent_events_reach_the_server_one_by_one_in_process(data_dir: Path, backend: str) -> None:
    def run(app: FastAPI) -> list[tuple[str, int]]:
        def acknowledge(chunk: bytes) -> None:
            index = re.search(rb"id: (\d+)", chunk)
            assert index is not None
            app.state.acks.setdefault(f"raw/{int(index[1])}", anyio.Event()).set()

        result = anyio.run(
            lambda: exchange(app, "/events?count=5&lockstep=raw", on_body=acknowledge), backend=backend
        )
        assert result.error is None  # a buffered stream would wait for its acknowledgement forever
        return result.outline()

    assert run(build_app(True, data_dir)) == run(build_app(False, data_dir))


def test_a_failure_after_the_response_started_looks_the_same_to_the_client(pair: Pair) -> None:
    seen = pair.same("GET", "/stream-then-fail")
    assert seen.status in (0, 200) and seen.error is not None
    if pair.transport == "uvicorn":
        # The two blocks arrive, then uvicorn drops the connection: the body is visibly incomplete.
        assert (seen.size, seen.error) == (2 * len(BLOCK), "RemoteProtocolError")


def test_a_failure_after_the_response_started_is_alerted(
    servers: Servers, session_lark: LarkReceiver
) -> None:
    with uvicorn_client(servers.observed.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/stream-then-fail")
    card = wait_for_card(session_lark, "GET /stream-then-fail")
    assert "the stream broke after two blocks" in card_text(card)


def leave_mid_stream(server: Server, path: str, times: int) -> None:
    for _ in range(times):
        with uvicorn_client(server.url) as client, client.stream("GET", path) as response:
            assert response.status_code in (200, 503)
            for received, _chunk in enumerate(response.iter_raw(), 1):
                if received == 3:
                    break  # leaving the block closes the connection mid-response


def server_state(server: Server) -> dict[str, int]:
    with uvicorn_client(server.url) as client:
        state: dict[str, int] = client.get("/state").json()
        return state


@pytest.mark.parametrize("status", [200, 503])
def test_clients_leaving_mid_stream_leave_nothing_behind(
    servers: Servers, session_lark: LarkReceiver, status: int
) -> None:
    for server in (servers.bare, servers.observed):
        logged_before = len(server.output())
        before = server_state(server)
        leave_mid_stream(server, f"/forever?status={status}", times=5)

        def settled(server: Server = server, before: dict[str, int] = before) -> bool:
            return server_state(server) == {
                "streams_closed": before["streams_closed"] + 5,
                "tasks": before["tasks"],
            }

        wait_until(settled, timeout=10, what="every stream closed and no task left over")
        assert server.output()[logged_before:] == ""  # nothing logged, by us or anyone
    settle_alerts(servers.observed, session_lark, SENTINELS[status])
    forever = [card for card in session_lark.cards if card_title(card) == f"{status} GET /forever"]
    assert len(forever) == (1 if status == 503 else 0)  # one alert for the failing status, not five


# On 2.4 Starlette abandons the body generator mid-iteration; trio warns when it is collected,
# with the middleware or without it.
@pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")
@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_client_leaving_in_process_changes_nothing_and_alerts_nothing(
    data_dir: Path, backend: str, spec_version: str
) -> None:
    observed_app = build_app(True, data_dir)
    results = [
        anyio.run(
            lambda app=app: exchange(app, "/forever", leave_after_bodies=3, spec_version=spec_version),
            backend=backend,
        )
        for app in (build_app(False, data_dir), observed_app)
    ]
    bare, observed = results
    assert (observed.outline(), observed.error) == (bare.outline(), bare.error)
    # 2.3: the response notices the disconnect and stops; 2.4: the send fails and ClientDisconnect propagates.
    assert observed.error == (None if spec_version == "2.3" else "ClientDisconnect")
    assert observed_app.state.streams_closed == 1
    alerter = find_middleware(observed_app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().raised == 0
