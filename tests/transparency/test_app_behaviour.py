"""The app behaves the same under the middleware: state, context, bodies, background work, websockets."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ..conftest import wait_until
from .app import MiB, pattern_digest
from .conftest import Pair

WEBSOCKET_TRANSPORTS = ["uvicorn", "testclient-asyncio", "testclient-trio"]  # httpx speaks no websocket


def test_lifespan_state_reaches_handlers(pair: Pair) -> None:
    assert pair.same("GET", "/lifespan").json() == {"db": "connected", "started": "yes"}


def test_context_variables_set_in_dependencies_are_visible_in_handlers(pair: Pair) -> None:
    assert pair.same("GET", "/context").json() == {
        "user": "ann",
        "tenant": "acme",
        "from_dependencies": "annacme",
    }


def test_a_handler_can_read_the_body_twice(pair: Pair) -> None:
    payload = b'{"order": 7}' * 10_000
    seen = pair.same("POST", "/body-twice", content=payload, headers={"content-type": "application/json"})
    assert seen.json()["size"] == len(payload) and seen.json()["same"] is True


@pytest.mark.parametrize("status", [200, 500])
def test_a_50_mib_upload_read_as_a_stream_arrives_whole(pair: Pair, status: int) -> None:
    bare = pair.bare.upload(f"/upload?status={status}", 50 * MiB)
    observed = pair.observed.upload(f"/upload?status={status}", 50 * MiB)
    assert observed == bare
    assert observed.status == status
    assert observed.json() == {"size": 50 * MiB, "sha256": pattern_digest(50 * MiB)}


def test_background_tasks_still_run_after_the_response(pair: Pair) -> None:
    for client in (pair.bare, pair.observed):
        key = uuid.uuid4().hex
        assert client.request("GET", f"/background?key={key}").json() == {"scheduled": key}
        # In process the task has run when the call returns; through uvicorn it runs just after.
        wait_until(
            lambda key=key, client=client: client.request("GET", f"/background-done?key={key}").json()["done"]
        )


def websocket_conversation_through_uvicorn(url: str) -> list[object]:
    said: list[object] = []
    with connect(url.replace("http://", "ws://") + "/ws", open_timeout=10) as websocket:
        said.append(websocket.response.headers.get("x-echo"))
        for text in ("hello", "ünïcode"):
            websocket.send(text)
            said.append(websocket.recv(timeout=10))
        websocket.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
    assert closed.value.rcvd is not None
    said.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    return said


def websocket_conversation_in_process(client: TestClient) -> list[object]:
    said: list[object] = []
    with client.websocket_connect("/ws") as websocket:
        said.append(dict(websocket.extra_headers or []).get(b"x-echo", b"").decode())  # type: ignore[attr-defined]
        for text in ("hello", "ünïcode"):
            websocket.send_text(text)
            said.append(websocket.receive_text())
        websocket.send_text("bye")
        closing = websocket.receive()
    said.append((closing["code"], closing["reason"]))
    return said


@pytest.mark.parametrize("pair", WEBSOCKET_TRANSPORTS, indirect=True)
def test_websockets_pass_through(pair: Pair) -> None:
    if pair.transport == "uvicorn":
        conversations = [
            websocket_conversation_through_uvicorn(url) for url in (pair.bare_url, pair.observed_url)
        ]
    else:
        clients = [client.client for client in (pair.bare, pair.observed)]  # type: ignore[attr-defined]
        conversations = [websocket_conversation_in_process(client) for client in clients]
    assert conversations[1] == conversations[0]
    assert conversations[0] == ["yes", "echo: hello", "echo: ünïcode", (4000, "client said bye")]


def talk_through_uvicorn(url: str, path: str, say: list[str], leave: int | None = None) -> list[object]:
    """Say each text and note the answer; leave with a close code, if given; note how it ended."""
    heard: list[object] = []
    try:
        with connect(url.replace("http://", "ws://") + path, open_timeout=10) as websocket:
            for text in say:
                websocket.send(text)
                heard.append(websocket.recv(timeout=10))
            if leave is not None:
                websocket.close(code=leave, reason="going away")
    except ConnectionClosed as closed:
        heard.append(("closed", closed.rcvd.code if closed.rcvd else None))
    except InvalidStatus as refused:
        heard.append(("refused", refused.response.status_code))
    return heard


def talk_in_process(client: TestClient, path: str, say: list[str], leave: int | None = None) -> list[object]:
    heard: list[object] = []
    try:
        with client.websocket_connect(path) as websocket:
            for text in say:
                websocket.send_text(text)
                heard.append(websocket.receive_text())
            if leave is not None:
                websocket.close(code=leave, reason="going away")
    except Exception as error:  # what the test client hands back of the app's end
        heard.append(("raised", type(error).__name__, getattr(error, "code", None)))
    return heard


def talk(
    pair: Pair, path: str, say: list[str], leave: int | None = None
) -> tuple[list[object], list[object]]:
    """The same conversation with the bare and the observed app."""
    if pair.transport == "uvicorn":
        return (
            talk_through_uvicorn(pair.bare_url, path, say, leave),
            talk_through_uvicorn(pair.observed_url, path, say, leave),
        )
    bare, observed = (client.client for client in (pair.bare, pair.observed))  # type: ignore[attr-defined]
    return talk_in_process(bare, path, say, leave), talk_in_process(observed, path, say, leave)


@pytest.mark.parametrize("pair", WEBSOCKET_TRANSPORTS, indirect=True)
def test_a_websocket_endpoint_that_raises_looks_the_same_to_the_client(pair: Pair) -> None:
    bare, observed = talk(pair, "/ws-crash", ["hello", "crash"])
    assert observed == bare
    # uvicorn drops the connection without a close frame; the test client hands the exception back.
    ending = ("closed", None) if pair.transport == "uvicorn" else ("raised", "RuntimeError", None)
    assert observed == ["echo: hello", ending]


@pytest.mark.parametrize("pair", WEBSOCKET_TRANSPORTS, indirect=True)
def test_a_websocket_refused_with_a_close_code_looks_the_same_to_the_client(pair: Pair) -> None:
    bare, observed = talk(pair, "/ws-refused", [])
    assert observed == bare
    refusal = ("refused", 403) if pair.transport == "uvicorn" else ("raised", "WebSocketDisconnect", 1008)
    assert observed == [refusal]


@pytest.mark.parametrize("pair", WEBSOCKET_TRANSPORTS, indirect=True)
def test_a_client_leaving_a_websocket_looks_the_same_to_the_app(pair: Pair) -> None:
    goodbyes = []
    for client, url in ((pair.bare, pair.bare_url), (pair.observed, pair.observed_url)):
        key = uuid.uuid4().hex
        path = f"/ws-listen/{key}"
        if pair.transport == "uvicorn":
            heard = talk_through_uvicorn(url, path, ["hi"], leave=1001)
        else:
            heard = talk_in_process(client.client, path, ["hi"], leave=1001)  # type: ignore[attr-defined]
        assert heard[0] == "heard: hi"
        # Through uvicorn the endpoint hears of it just after the client left.
        wait_until(lambda client=client, key=key: client.request("GET", f"/ws-goodbye/{key}").json())
        goodbyes.append((heard, client.request("GET", f"/ws-goodbye/{key}").json()))
    assert goodbyes[1] == goodbyes[0]
    assert goodbyes[0][1] == [1001, "going away"]
