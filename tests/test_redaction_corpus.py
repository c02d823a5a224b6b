"""The redaction corpus: no leak in it reaches a rendered card, and the ordinary text in it does.

Each case is rendered through the built-in card; what is asserted is the card's JSON and its
text as Lark shows it (numeric entities decoded). A handful of cases, and the hostile bodies
of "whatever the bytes", go through a real app and arrive at a Lark-compatible receiver.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lark_alert_middleware._card.redact import Redactor, marker
from lark_alert_middleware._card.render import CardRenderer
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._records import NO_BODY, CapturedBody, ErrorEvent, ExceptionText
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import shown_text
from .redaction_corpus import LEAKS, VISIBLE, Case

BODY_TYPES = {
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=XyZ",
    "json": "application/json",
    "text": "text/plain",
    "xml": "application/xml",
}
TRACEBACK_HEAD = 'Traceback (most recent call last):\n  File "/srv/shop/db.py", line 12, in open\n'
BASE_EVENT = ErrorEvent(
    timestamp=1_767_225_600.0,
    duration_seconds=0.01,
    method="POST",
    scheme="https",
    path="/orders/42",
    route="/orders/{order_id}",
    query_string="",
    headers=(("host", "shop.example.com"),),
    client="203.0.113.7:51234",
    request_id="3f1c2d9e8b7a4c6d",
    status_code=500,
    request_body=NO_BODY,
    response_body=NO_BODY,
    exception=None,
)


def body(text: str, content_type: str) -> CapturedBody:
    data = text.encode("utf-8", "surrogatepass")
    return CapturedBody(data, len(data), content_type)


def event_for(case: Case) -> ErrorEvent:
    where, _, detail = case.place.partition(":")
    changes: dict[str, Any]
    if where == "header":
        changes = {"headers": (*BASE_EVENT.headers, (detail.lower(), case.text))}
    elif where == "query":
        changes = {"query_string": case.text}
    elif where in BODY_TYPES:
        changes = {"request_body": body(case.text, BODY_TYPES[where])}
    elif where == "response":
        changes = {
            "response_body": body(case.text, "application/json" if case.text[0] == "{" else "text/plain")
        }
    elif where == "message":
        traceback = f"{TRACEBACK_HEAD}    raise ValueError(message)\nValueError: {case.text}"
        changes = {"exception_text": ExceptionText("ValueError", case.text, traceback)}
    elif where == "traceback":
        traceback = f"{TRACEBACK_HEAD}{case.text}\nRuntimeError: failed"
        changes = {"exception_text": ExceptionText("RuntimeError", "failed", traceback)}
    else:
        changes = {"path": case.text, "route": detail}
    return dataclasses.replace(BASE_EVENT, **changes)


def rendered_card(event: ErrorEvent) -> dict[str, Any]:
    view = build_view(event, f"{event.method} {event.route} {event.status_code}", None, Redactor())
    return CardRenderer().render(view, CardSettings("shop", "production")).card


def assert_no_leak(card: dict[str, Any], case: Case) -> None:
    card_json, shown = json.dumps(card, ensure_ascii=False), shown_text(card)
    # A part of a secret is a leak too: neither half of a long one may show.
    pieces = [case.secret]
    if len(case.secret) >= 12:
        pieces += [case.secret[: len(case.secret) // 2 + 1], case.secret[len(case.secret) // 2 :]]
    for piece in pieces:
        assert piece not in card_json and piece not in shown, f"{piece!r} is on the card"
    if case.kind is not None:
        assert marker(case.kind) in shown


@pytest.mark.parametrize("case", LEAKS, ids=[case.id for case in LEAKS])
def test_no_secret_of_the_corpus_reaches_the_card(case: Case) -> None:
    assert_no_leak(rendered_card(event_for(case)), case)


@pytest.mark.parametrize("case", VISIBLE, ids=[case.id for case in VISIBLE])
def test_ordinary_text_stays_on_the_card(case: Case) -> None:
    assert case.secret in shown_text(rendered_card(event_for(case)))


# -- through the app -------------------------------------------------------------------------------
THROUGH_THE_APP = ["reset-token", "bearer", "shopify-hmac", "oauth-code", "login-form", "graphql-variables"]
THROUGH_THE_APP += ["multipart-bare", "harmless-name-first", "dsn-in-message"]


def request_for(case: Case) -> tuple[str, str, dict[str, Any]]:
    """The method, URL and httpx options that make the app see the case's text."""
    where, _, detail = case.place.partition(":")
    if where == "header":
        return "POST", "/echo-fail", {"headers": {detail: case.text}}
    if where == "query":
        return "POST", f"/echo-fail?{case.text}", {}
    if where in BODY_TYPES:
        return (
            "POST",
            "/echo-fail",
            {"content": case.text.encode(), "headers": {"content-type": BODY_TYPES[where]}},
        )
    if where == "message":  # the app raises OrderError(f"order failed: {kind}")
        return "GET", "/boom/" + quote(case.text, safe=""), {}
    return "GET", case.text, {}


async def alert_for(receiver: LarkReceiver, method: str, url: str, **options: Any) -> dict[str, Any]:
    app = failing_app(webhook_url=receiver.url)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(method, url, **options)
    assert response.status_code >= 400
    [card] = receiver.wait_for_cards(1)
    return card


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "case", [case for case in LEAKS if case.id in THROUGH_THE_APP], ids=lambda case: case.id
)
async def test_corpus_leaks_sent_to_an_app_do_not_reach_lark(lark_receiver: LarkReceiver, case: Case) -> None:
    method, url, options = request_for(case)
    assert_no_leak(await alert_for(lark_receiver, method, url, **options), case)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_secret_path_parameter_is_redacted_and_its_route_shown(lark_receiver: LarkReceiver) -> None:
    card = await alert_for(lark_receiver, "GET", "/reset/Pz1eS3eT5tO7kE9n")
    assert "/reset/[redacted token]" in shown_text(card) and "Pz1eS3eT5tO7kE9n" not in shown_text(card)
    assert "GET /reset/{token}" in card["header"]["title"]["content"]


HOSTILE_BODIES = {
    "undeclared charset": (
        b'{"note": "visible", "password": "Hc1hA3rS5eT7pW9x"}',
        "application/json; charset=undefined",
    ),
    "idna charset": (b'{"note": "visible"}', "application/json; charset=idna"),
    "punycode charset": (
        b"note=visible&" + b"a" * 60_000,
        "application/x-www-form-urlencoded; charset=punycode",
    ),
    "json a thousand bytes deep": (b"[" * 500 + b'"visible"' + b"]" * 500, "application/json"),
    "objects hundreds deep": (b'{"a":' * 700 + b'"visible"' + b"}" * 700, "application/json"),
    "lone surrogate": (b'{"note": "visible \\ud800"}', "application/json"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", HOSTILE_BODIES)
async def test_a_hostile_body_still_raises_an_alert_that_shows_it(
    lark_receiver: LarkReceiver, name: str
) -> None:
    content, content_type = HOSTILE_BODIES[name]
    card = await alert_for(
        lark_receiver, "POST", "/echo-fail", content=content, headers={"content-type": content_type}
    )
    shown = shown_text(card)
    assert "Request body" in shown and ("visible" in shown or "items]" in shown or "keys}" in shown)
    assert "Hc1hA3rS5eT7pW9x" not in shown


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("content", "encoding"),
    [(gzip.compress(b"eyJ" * 30_000), "gzip"), (b"eyJ" * 350_000, "identity")],
    ids=["a hundred bytes of gzip", "a megabyte"],
)
async def test_a_body_that_backtracking_patterns_take_minutes_over_is_alerted_at_once(
    lark_receiver: LarkReceiver, content: bytes, encoding: str
) -> None:
    app = failing_app(webhook_url=lark_receiver.url, max_body_bytes=1024 * 1024)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"content-type": "text/plain", "content-encoding": encoding}
        await client.post("/echo-fail", content=content, headers=headers)
    # Linear redaction takes milliseconds here, the alerter's start-up tenths of a second.
    [card] = lark_receiver.wait_for_cards(1, timeout=4.0)
    assert f"text, {len(content):,} bytes" in shown_text(card)
