"""Shared fixtures: real Redis (shared or private), free ports, the middleware inside an app."""

from __future__ import annotations

import html
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as redis_asyncio

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware._pipeline.dedup import DedupStore, InProcessDedupStore, RedisDedupStore
from lark_alert_middleware._pipeline.memory import Memory
from lark_alert_middleware._pipeline.redis_keys import claim_keys
from lark_alert_middleware.testing import LarkReceiver

SHARED_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Tests must not pick up a developer's real configuration.
for _variable in [
    name for name in os.environ if name.startswith("LARK_") or name in ("REDIS_URL", "SEQ_URL")
]:
    del os.environ[_variable]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio unless a module says otherwise."""
    return "asyncio"


def client_for(app: Any) -> httpx.AsyncClient:
    """An httpx client calling `app` in process; app exceptions become 500s, as under a server."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://test"
    )


def keep_the_alerter_busy() -> threading.Event:
    """Occupy the alerter loop until the returned event is set: what is handed off waits, untaken."""
    from lark_alert_middleware._pipeline.loop import background_loop

    busy, release = threading.Event(), threading.Event()
    background_loop.loop().call_soon_threadsafe(lambda: (busy.set(), release.wait(30)))
    busy.wait(10)
    return release


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: object, timeout: float = 10.0, interval: float = 0.02, what: str = "") -> None:
    """Poll `condition()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    prefix = f"lark-alert-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# Errors remembered for an hour, Back after a minute: what store tests reason with.
QUICK_MEMORY = Memory(seconds=3600, regression_after=60)
StoreFactory = Callable[[], DedupStore]


@pytest.fixture(params=["in-process", "redis"])
async def replicas(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[StoreFactory]:
    """Makes the dedup store of one more replica of a fleet: a Redis client on this test's prefix
    of the shared Redis, or, in-process, the one store they all share."""
    if request.param == "in-process":
        shared = InProcessDedupStore(100, QUICK_MEMORY)
        yield lambda: shared
        return
    clients: list[redis_asyncio.Redis] = []

    def replica() -> DedupStore:
        clients.append(redis_asyncio.Redis.from_url(SHARED_REDIS_URL))
        return RedisDedupStore(clients[-1], redis_prefix, QUICK_MEMORY)

    yield replica
    for client in clients:
        await client.aclose()


async def end_window(store: DedupStore, key: str) -> None:
    """End `key`'s window now, as its expiry would (Redis expires keys on its own clock)."""
    if isinstance(store, RedisDedupStore):
        await store._client.delete(claim_keys(store._prefix, key)[0])
    else:
        assert isinstance(store, InProcessDedupStore)
        store._entries[key].window_ends = 0.0


@dataclass
class RedisServer:
    """A redis-server this test started; it may stop, kill or restart it."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        try:
            wait_until(lambda: _pings(client), timeout=10, what="redis-server to answer PING")
        finally:
            client.close()

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered, as by a hung Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server on a free port, for tests that stop or kill Redis."""
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


def find_middleware(app: object) -> LarkAlertMiddleware:
    """The middleware instance inside a built Starlette/FastAPI middleware stack."""
    layer = getattr(app, "middleware_stack", None) or app
    while not isinstance(layer, LarkAlertMiddleware):
        layer = layer.app  # type: ignore[attr-defined]
    return layer


def card_text(card: dict[str, object]) -> str:
    """All the text of a card, for asserting what a reader would see."""
    import json

    return json.dumps(card, ensure_ascii=False)


def shown_text(card: object) -> str:
    """Every text of a card as a reader sees it (Lark shows `&#40;` as `(`), one per line."""
    if isinstance(card, dict):
        return "\n".join(shown_text(value) for value in card.values())
    if isinstance(card, list):
        return "\n".join(shown_text(item) for item in card)
    return html.unescape(card) if isinstance(card, str) else ""


def card_full_title(card: dict[str, object]) -> str:
    return str(card["header"]["title"]["content"])  # type: ignore[index]


def title_subject(title: str) -> str:
    """What failed, e.g. `500 GET /items/{item_id}`: a card title without severity icon, service and env
    (nor the mark of a new or returning error)."""
    subject = title.split(" · ")[0]
    icon, _, rest = subject.partition(" ")
    if icon not in ("🔴", "🟠"):
        return subject
    mark, _, after_mark = rest.partition(" ")
    return after_mark if mark in ("🆕", "🔁") else rest


def card_title(card: dict[str, object]) -> str:
    return title_subject(card_full_title(card))


collect_ignore = ["user_project"]


@pytest.fixture
def process_pipeline() -> Iterator[None]:
    """The process's pipeline (for log records and `capture_*`) forgotten before and after the test."""
    from lark_alert_middleware._pipeline.current import current_pipeline

    current_pipeline.reset()
    yield
    current_pipeline.reset()


@pytest.fixture
def root_logger() -> Iterator[Any]:
    """The root logger, with the handlers and level it had restored after the test."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def write_routes(tmp_path: Path) -> Callable[[str], Path]:
    """Write a `LARK_ALERT_ROUTES` file (TOML text) into the test's own folder; returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "alert-routes.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@dataclass
class LarkGroups:
    """Three Lark groups on loopback, each its own bot (own token, own rate limits)."""

    payments: LarkReceiver  # signs: PAYMENTS_LARK_WEBHOOK, PAYMENTS_LARK_SECRET
    on_call: LarkReceiver  # ONCALL_LARK_WEBHOOK
    quiet: LarkReceiver  # the default: LARK_WEBHOOK_URL, given to the middleware

    def all(self) -> list[LarkReceiver]:
        return [self.payments, self.on_call, self.quiet]


@pytest.fixture
def lark_groups(
    make_lark_receiver: Callable[..., LarkReceiver], monkeypatch: pytest.MonkeyPatch
) -> LarkGroups:
    """Three receivers, the webhooks of the routes in the environment as a routes file names them."""
    groups = LarkGroups(
        payments=make_lark_receiver(token="payments-token", secret="payments-secret"),
        on_call=make_lark_receiver(token="on-call-token"),
        quiet=make_lark_receiver(token="quiet-token"),
    )
    monkeypatch.setenv("PAYMENTS_LARK_WEBHOOK", groups.payments.url)
    monkeypatch.setenv("PAYMENTS_LARK_SECRET", "payments-secret")
    monkeypatch.setenv("ONCALL_LARK_WEBHOOK", groups.on_call.url)
    return groups
