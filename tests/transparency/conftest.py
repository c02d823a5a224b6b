"""The transparency matrix: the same requests to the bare and the observed app, through every transport.

A `Pair` holds two clients of one transport: `bare` (the app alone) and `observed` (the same
app with LarkAlertMiddleware). Transports: real uvicorn processes, `httpx.ASGITransport`, and
Starlette's `TestClient` on asyncio and on trio. Each client answers with a `Seen`: status,
headers (without `date`), body size and digest, and the error the client got, if any.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_title, wait_until
from ..servers import Server, start_uvicorn
from .app import Layout, blocks, build_app

TRANSPORTS = ["uvicorn", "asgi", "testclient-asyncio", "testclient-trio"]
IN_PROCESS = TRANSPORTS[1:]
# What every client sends unless told otherwise: no compression, so bodies compare byte for byte.
DEFAULT_HEADERS = {"accept-encoding": "identity"}
# Headers that differ between any two responses, middleware or not.
PER_RESPONSE_HEADERS = frozenset({"date"})


@dataclass(frozen=True)
class Seen:
    """What a client saw of one response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    size: int
    digest: str
    body: bytes = field(repr=False)  # the first 64 KiB, for assertions on content
    error: str | None = None  # the exception the client got, after whatever arrived before it

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


class Reading:
    """Accumulates a streamed body without holding it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def add(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        if len(self.head) < 65536:
            self.head += chunk[: 65536 - len(self.head)]

    def seen(self, response: httpx.Response | None, error: BaseException | None) -> Seen:
        headers: tuple[tuple[str, str], ...] = ()
        if response is not None:
            headers = tuple(
                (name.lower(), value)
                for name, value in response.headers.multi_items()
                if name.lower() not in PER_RESPONSE_HEADERS
            )
        return Seen(
            response.status_code if response is not None else 0,
            headers,
            self.size,
            self.digest.hexdigest(),
            self.head,
            type(error).__name__ if error is not None else None,
        )


class Client(Protocol):
    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: bytes | None = None
    ) -> Seen: ...

    def upload(self, path: str, size: int) -> Seen: ...


def _headers(headers: dict[str, str] | None) -> dict[str, str]:
    return {**DEFAULT_HEADERS, **(headers or {})}


class SyncClient:
    """An httpx-compatible sync client: uvicorn through httpx.Client, or a Starlette TestClient."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: Any = None
    ) -> Seen:
        reading, response = Reading(), None
        try:
            with self.client.stream(method, path, headers=_headers(headers), content=content) as response:
                for chunk in response.iter_raw():
                    reading.add(chunk)
        except Exception as error:
            return reading.seen(response, error)
        return reading.seen(response, None)

    def upload(self, path: str, size: int) -> Seen:
        return self.request("POST", path, content=blocks(size))


class AsgiClient:
    """httpx.AsyncClient over ASGITransport, driven from the test through a blocking portal."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    async def _request(self, method: str, path: str, headers: dict[str, str] | None, content: Any) -> Seen:
        reading, response = Reading(), None
        try:
            async with self.client.stream(
                method, path, headers=_headers(headers), content=content
            ) as response:
                async for chunk in response.aiter_raw():
                    reading.add(chunk)
        except Exception as error:
            return reading.seen(response, error)
        return reading.seen(response, None)

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: bytes | None = None
    ) -> Seen:
        return self.portal.call(self._request, method, path, headers, content)

    def upload(self, path: str, size: int) -> Seen:
        async def body() -> AsyncIterator[bytes]:
            for piece in blocks(size):
                yield piece

        return self.portal.call(self._request, "POST", path, None, body())


@dataclass
class Pair:
    """The bare and the observed app behind one transport."""

    transport: str
    bare: Client
    observed: Client
    bare_url: str = ""  # through uvicorn only
    observed_url: str = ""

    def both(self, method: str, path: str, **options: Any) -> tuple[Seen, Seen]:
        return self.bare.request(method, path, **options), self.observed.request(method, path, **options)

    def same(self, method: str, path: str, **options: Any) -> Seen:
        """Send the request to both; assert the client saw the same; return what it saw."""
        bare, observed = self.both(method, path, **options)
        assert observed == bare
        return observed


@contextlib.asynccontextmanager
async def running_lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """What a server does around requests: lifespan start-up, the state it yields, shut-down."""
    state: dict[str, Any] = {}
    to_app_send, to_app_receive = anyio.create_memory_object_stream[Message](4)
    from_app_send, from_app_receive = anyio.create_memory_object_stream[Message](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}

    async def receive() -> Message:
        return await to_app_receive.receive()

    async def send(message: Message) -> None:
        await from_app_send.send(message)

    async with anyio.create_task_group() as group:
        group.start_soon(app, scope, receive, send)
        await to_app_send.send({"type": "lifespan.startup"})
        assert (await from_app_receive.receive())["type"] == "lifespan.startup.complete"
        yield state
        await to_app_send.send({"type": "lifespan.shutdown"})
        assert (await from_app_receive.receive())["type"] == "lifespan.shutdown.complete"
    for stream in (to_app_send, to_app_receive, from_app_send, from_app_receive):
        stream.close()


def with_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    """Hand each request a copy of the lifespan state, as uvicorn does."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["state"] = dict(state)
        await app(scope, receive, send)

    return serve


@contextlib.contextmanager
def in_process_client(transport: str, app: FastAPI) -> Iterator[Client]:
    if transport == "asgi":
        with (
            start_blocking_portal("asyncio") as portal,
            portal.wrap_async_context_manager(running_lifespan(app)) as state,
        ):
            asgi = httpx.ASGITransport(with_state(app, state))
            client = httpx.AsyncClient(transport=asgi, base_url="http://testserver", timeout=30)
            try:
                yield AsgiClient(portal, client)
            finally:
                portal.call(client.aclose)
        return
    backend = transport.removeprefix("testclient-")
    with TestClient(app, backend=backend) as test_client:
        yield SyncClient(test_client)


@contextlib.contextmanager
def in_process_pair(transport: str, bare_app: FastAPI, observed_app: FastAPI) -> Iterator[Pair]:
    with (
        in_process_client(transport, bare_app) as bare,
        in_process_client(transport, observed_app) as observed,
    ):
        yield Pair(transport, bare, observed)


@dataclass
class Servers:
    bare: Server
    observed: Server


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transparency-data")


@pytest.fixture(scope="session")
def session_lark() -> Iterator[LarkReceiver]:
    """One Lark-compatible webhook for the uvicorn servers of the whole matrix."""
    with LarkReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def start_transparency_server(
    data_dir: Path, session_lark: LarkReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[bool, Layout], Server]]:
    """Start uvicorn serving the transparency app; every server started is killed at the end."""
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("uvicorn-logs")

    def start(observed: bool, layout: Layout = "plain") -> Server:
        environment = {
            "TRANSPARENCY_OBSERVED": "1" if observed else "0",
            "TRANSPARENCY_FILES": str(data_dir),
            "TRANSPARENCY_LAYOUT": layout,
            "LARK_WEBHOOK_URL": session_lark.url,
            "LARK_ALERT_SHUTDOWN_TIMEOUT": "2",
        }
        server = start_uvicorn("tests.transparency.served:app", logs, environment)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def servers(start_transparency_server: Callable[[bool, Layout], Server]) -> Servers:
    """A bare and an observed uvicorn, shared by every module of the matrix."""
    return Servers(start_transparency_server(False, "plain"), start_transparency_server(True, "plain"))


def wait_for_card(lark: LarkReceiver, title_end: str) -> dict[str, Any]:
    """The first accepted card whose title ends with `title_end`, waiting for it if need be."""

    def found() -> dict[str, Any] | None:
        return next((card for card in lark.cards if card_title(card).endswith(title_end)), None)

    wait_until(lambda: found() is not None, timeout=10, what=f"a card titled ...{title_end}")
    card = found()
    assert card is not None
    return card


def settle_alerts(server: Server, lark: LarkReceiver, sentinel_status: int) -> None:
    """Fail once with a status nobody else uses and wait for its card: what came before is decided."""
    with uvicorn_client(server.url) as client:
        assert client.get(f"/text?status={sentinel_status}").status_code == sentinel_status
    wait_for_card(lark, f"{sentinel_status} GET /text")


def uvicorn_client(url: str) -> httpx.Client:
    # No keep-alive: uvicorn closes the connection after an unhandled exception.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=url, timeout=30, limits=limits)


@contextlib.contextmanager
def uvicorn_pair(bare: Server, observed: Server) -> Iterator[Pair]:
    with uvicorn_client(bare.url) as bare_client, uvicorn_client(observed.url) as observed_client:
        yield Pair("uvicorn", SyncClient(bare_client), SyncClient(observed_client), bare.url, observed.url)


@pytest.fixture(scope="module", params=TRANSPORTS)
def pair(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Pair]:
    """The bare and the observed transparency app behind one transport (see TRANSPORTS)."""
    transport: str = request.param
    if transport == "uvicorn":
        running: Servers = request.getfixturevalue("servers")
        with uvicorn_pair(running.bare, running.observed) as served:
            yield served
        return
    with in_process_pair(transport, build_app(False, data_dir), build_app(True, data_dir)) as in_process:
        yield in_process
