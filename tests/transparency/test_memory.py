"""Capture holds at most the configured bytes, however large the body; 50 MiB cost no more than a bare app."""

from __future__ import annotations

import re
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from starlette.types import Message

from lark_alert_middleware._pipeline.loop import background_loop
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_text, find_middleware
from ..servers import Server
from .app import MiB, blocks, build_app
from .conftest import Servers, uvicorn_client, wait_for_card

KiB = 1024
# tracemalloc's bookkeeping, the event, the alerter's hand-off: what the middleware may add besides the caps.
OVERHEAD_ALLOWED = 64 * KiB
# Peak RSS the observed server may add over the bare one for the same 50 MiB requests.
RSS_ALLOWED = 4 * MiB


async def drive(app: FastAPI, method: str, path: str, upload_size: int) -> int:
    """One request straight through the ASGI interface, uploading in 64 KiB pieces, discarding the answer."""
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/octet-stream")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    pieces: Iterator[bytes] = blocks(upload_size)
    status = 0
    finished = anyio.Event()

    async def receive() -> Message:
        piece = next(pieces, None)
        if piece is not None:
            return {"type": "http.request", "body": piece, "more_body": True}
        if not finished.is_set():
            finished.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def peak_traced_bytes(app: FastAPI, method: str, path: str, upload_size: int, status: int) -> int:
    """The peak of Python allocations during one request, with the alerter thread held still."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(30)

    background_loop.call_soon(hold)  # card rendering must not count towards the request's peak
    held.wait(10)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        assert anyio.run(drive, app, method, path, upload_size) == status
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        release.set()


@pytest.mark.parametrize("cap", [8 * KiB, MiB])
@pytest.mark.parametrize(
    ("method", "path", "upload_size", "status"),
    [
        ("GET", f"/stream?size={50 * MiB}&status=503", 0, 503),
        ("POST", "/upload?status=500", 50 * MiB, 500),
    ],
)
def test_capture_holds_no_more_than_its_cap_whatever_the_body_size(
    data_dir: Path, cap: int, method: str, path: str, upload_size: int, status: int
) -> None:
    bare = build_app(False, data_dir)
    observed = build_app(True, data_dir, max_body_bytes=cap)
    for app in (bare, observed):  # first requests build the middleware stack and caches
        anyio.run(drive, app, "GET", "/ok", 0)
    bare_peak = peak_traced_bytes(bare, method, path, upload_size, status)
    observed_peak = peak_traced_bytes(observed, method, path, upload_size, status)
    # A capture keeps at most `cap` bytes and freezing copies them once; uncapped, this is 50 MiB more.
    assert observed_peak - bare_peak <= 2 * cap + OVERHEAD_ALLOWED
    alerter = find_middleware(observed).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().raised == 1


def memory_kib(server: Server, field: str) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match[1])


def reset_peak_rss(server: Server) -> None:
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")  # peak RSS := current RSS


def fifty_mib_requests(server: Server, failing_status: int) -> None:
    """Every 50 MiB case, succeeding and failing (`failing_status` and the next: no other test uses them)."""
    with uvicorn_client(server.url) as client:
        for status in (200, failing_status):
            with client.stream("GET", f"/stream?size={50 * MiB}&status={status}") as response:
                assert response.status_code == status
                assert sum(len(chunk) for chunk in response.iter_raw()) == 50 * MiB
            upload = client.post(f"/upload?status={status + 1}", content=blocks(50 * MiB))
            assert upload.status_code == status + 1 and upload.json()["size"] == 50 * MiB


def test_50_mib_bodies_raise_peak_rss_no_more_than_a_few_mib_over_the_bare_app(
    servers: Servers, session_lark: LarkReceiver
) -> None:
    growth: dict[str, int] = {}
    for name, server in (("bare", servers.bare), ("observed", servers.observed)):
        fifty_mib_requests(server, 505)  # warm up: buffers, the alerter thread, the webhook client
        reset_peak_rss(server)
        before = memory_kib(server, "VmRSS")
        fifty_mib_requests(server, 507)  # new errors, not repeats: captured, and alerted
        growth[name] = (memory_kib(server, "VmHWM") - before) * KiB
    assert growth["observed"] <= growth["bare"] + RSS_ALLOWED, growth
    for title_end in ("507 GET /stream", "508 POST /upload"):
        card = wait_for_card(session_lark, title_end)
        assert "of 52,428,800 bytes" in card_text(card)  # the body was captured, its first bytes kept
