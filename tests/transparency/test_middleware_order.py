"""Wherever it sits among other middlewares, and whatever exception handlers make of errors: the same."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_text, card_title, find_middleware
from ..servers import Server
from .app import Layout, build_app
from .conftest import IN_PROCESS, TRANSPORTS, Pair, Seen, in_process_pair, uvicorn_pair

Position = Literal["first", "last"]
GZIP = {"accept-encoding": "gzip"}
PREFLIGHT = {"origin": "https://shop.example", "access-control-request-method": "POST"}


def assert_same_gzipped(bare: Seen, observed: Seen) -> None:
    """Byte for byte, but for the gzip header's timestamp, which differs from second to second."""
    assert (observed.status, observed.headers, observed.size) == (bare.status, bare.headers, bare.size)
    assert observed.header("content-encoding") == "gzip"
    assert gzip.decompress(observed.body) == gzip.decompress(bare.body)
    assert observed.body[:4] + observed.body[8:] == bare.body[:4] + bare.body[8:]


@pytest.fixture(scope="module")
def gzip_servers(
    start_transparency_server: Callable[[bool, Layout], Server],
) -> dict[str, Server]:
    return {
        "bare": start_transparency_server(False, "gzip-inside"),
        "gzip-inside": start_transparency_server(True, "gzip-inside"),
        "gzip-outside": start_transparency_server(True, "gzip-outside"),
    }


@pytest.fixture(
    params=[(transport, layout) for transport in TRANSPORTS for layout in ("gzip-inside", "gzip-outside")]
)
def gzip_pair(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Pair]:
    """The bare app behind GZip, and the observed one with GZip inside or outside the middleware."""
    transport, layout = request.param
    if transport == "uvicorn":
        servers: dict[str, Server] = request.getfixturevalue("gzip_servers")
        with uvicorn_pair(servers["bare"], servers[layout]) as served:
            yield served
        return
    bare, observed = build_app(False, data_dir, "gzip-inside"), build_app(True, data_dir, layout)
    with in_process_pair(transport, bare, observed) as in_process:
        yield in_process


@pytest.mark.parametrize(
    "path", ["/text?size=20000", "/text?size=20000&status=503", "/stream?size=300000", "/json"]
)
def test_gzip_inside_or_outside_compresses_identically(gzip_pair: Pair, path: str) -> None:
    assert_same_gzipped(*gzip_pair.both("GET", path, headers=GZIP))


def test_small_responses_stay_uncompressed_either_way(gzip_pair: Pair) -> None:
    seen = gzip_pair.same("GET", "/ok", headers=GZIP)
    assert seen.header("content-encoding") is None


@pytest.mark.parametrize("layout", ["gzip-inside", "gzip-outside"])
def test_a_compressed_failure_is_alerted_with_a_readable_excerpt(
    data_dir: Path, lark_receiver: LarkReceiver, layout: Layout
) -> None:
    app = build_app(True, data_dir, layout, webhook_url=lark_receiver.url)
    with in_process_pair("testclient-asyncio", build_app(False, data_dir, layout), app) as pair:
        pair.observed.request("GET", "/text?size=20000&status=503", headers=GZIP)
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "503 GET /text"
    assert "all work and no play" in card_text(card)


def stacked_app(data_dir: Path, position: Position | None, **options: object) -> FastAPI:
    """The app behind CORS, GZip, TrustedHost and sessions, with the middleware added first or last."""
    app = build_app(False, data_dir)
    if position == "first":
        app.add_middleware(LarkAlertMiddleware, **options)
    app.add_middleware(SessionMiddleware, secret_key="not-a-secret")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["testserver"])
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(CORSMiddleware, allow_origins=["https://shop.example"], allow_methods=["*"])
    if position == "last":
        app.add_middleware(LarkAlertMiddleware, **options)
    return app


REQUESTS = [
    ("GET", "/json", {}),
    ("GET", "/json", GZIP),
    ("GET", "/session", {}),
    ("GET", "/items/3", {"origin": "https://shop.example"}),
    ("OPTIONS", "/json", PREFLIGHT),
    ("OPTIONS", "/json", {**PREFLIGHT, "origin": "https://evil.example"}),
    ("GET", "/json", {"host": "evil.example"}),
    ("GET", "/conflict", {}),
    ("GET", "/upstream", {}),
]


@pytest.mark.parametrize("transport", IN_PROCESS)
@pytest.mark.parametrize("position", ["first", "last"])
def test_first_or_last_among_other_middlewares_the_responses_are_identical(
    data_dir: Path, transport: str, position: Position
) -> None:
    with in_process_pair(transport, stacked_app(data_dir, None), stacked_app(data_dir, position)) as pair:
        for method, path, headers in REQUESTS:
            bare, observed = pair.both(method, path, headers=headers)
            if headers is GZIP:
                assert_same_gzipped(bare, observed)
            else:
                assert observed == bare, (method, path, headers)


@pytest.mark.parametrize("position", ["first", "last"])
def test_responses_made_by_exception_handlers_alert_like_any_other(
    data_dir: Path, lark_receiver: LarkReceiver, position: Position
) -> None:
    app = stacked_app(data_dir, position, webhook_url=lark_receiver.url)
    with in_process_pair("testclient-trio", stacked_app(data_dir, None), app) as pair:
        assert pair.observed.request("GET", "/conflict").status == 409
        assert pair.observed.request("GET", "/upstream").status == 502
        assert pair.observed.request("GET", "/json").status == 200
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    cards = {card_title(card): card_text(card) for card in lark_receiver.cards}
    assert sorted(cards) == ["409 GET /conflict", "502 GET /upstream"]
    assert "order 7 was changed meanwhile" in cards["409 GET /conflict"]
    assert "the payment service timed out" in cards["502 GET /upstream"]
