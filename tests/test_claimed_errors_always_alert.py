"""A claimed error always produces a card: what cannot be shown is left out and named, never the alert."""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import card_text, card_title, find_middleware

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://test"
    )


def shown(card: dict[str, Any]) -> str:
    """The card's text as a reader sees it (Lark shows `&#40;` as `(`)."""
    return html.unescape(card_text(card))


def forget_counters(app: Any) -> None:
    """These tests fail cards on purpose: the exit hook need not print their counters after the suite."""
    alerter = find_middleware(app).alerter
    assert alerter is not None
    alerter.counters.reset()


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and "not shown on a card" in record.getMessage()
    ]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json; charset=undefined", b'{"order": 1}'),
        ("text/plain; charset=idna", b"\xff\xfe" + b"x" * 100),
        ("text/plain; charset=punycode", b"order-\x80" * 20),
        ("application/json", b"[" * 1200 + b"]" * 1200),
        ("application/json", b'{"a":' * 600 + b"1" + b"}" * 600),
        ("application/json", b'{"name": "\\ud800"}'),
    ],
    ids=["undefined-charset", "idna", "punycode", "deep-list", "deep-object", "lone-surrogate"],
)
async def test_any_body_a_client_sends_still_produces_its_card(
    lark_receiver: LarkReceiver, content_type: str, body: bytes
) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        response = await client.post("/echo-fail", content=body, headers={"content-type": content_type})
    assert response.status_code == 500
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "500 POST /echo-fail"
    forget_counters(app)
    assert "Request body" in card_text(card)  # the full card, not the minimal one


async def test_a_part_that_fails_to_render_is_left_out_named_counted_and_logged_once(
    lark_receiver: LarkReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def scrub(text: str) -> str:
        if "sensitive" in text:
            raise RuntimeError("a bug in the user's scrub hook")
        return text

    app = failing_app(webhook_url=lark_receiver.url, scrub=scrub)
    with caplog.at_level(logging.ERROR, logger="lark_alert_middleware"):
        async with client_for(app) as client:
            for status in (500, 502, 503):
                response = await client.get(f"/status/{status}?note=sensitive")
                assert response.status_code == status
        cards = lark_receiver.wait_for_cards(3)
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.flush(5)
    assert sorted(card_title(card) for card in cards) == [
        f"{s} GET /status/{{status}}" for s in (500, 502, 503)
    ]
    for card in cards:
        text = shown(card)
        assert "**Not shown**: query (RuntimeError); see the logs" in text
        assert "sensitive" not in text
        assert "Request headers" in text  # the rest of the card is there
    assert alerter.stats().failed == 3 and alerter.stats().sent == 3
    [line] = failure_lines(caplog)  # once per cause, not once per card
    assert "query not shown on a card: RuntimeError" in line
    forget_counters(app)


async def test_a_template_that_fails_for_some_data_gives_way_to_the_minimal_card(
    lark_receiver: LarkReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    template = tmp_path / "per-query.json.j2"
    # Renders the sample at start-up; divides by zero for a request without a query.
    template.write_text(
        '{"elements": [{"tag": "markdown", "content": "{{ title }} {{ 100 // (query | length) }}"}]}'
    )
    app = failing_app(webhook_url=lark_receiver.url, template=str(template))
    with caplog.at_level(logging.ERROR, logger="lark_alert_middleware"):
        async with client_for(app) as client:
            await client.get("/boom/value")
            await client.get("/conflict")
        cards = lark_receiver.wait_for_cards(2)
    titles = sorted(card["header"]["title"]["content"] for card in cards)
    assert titles == [
        "🔴 500 GET /boom/{kind} · orders · production",
        "🟠 409 GET /conflict · orders · production",
    ]
    assert all("Not shown: the card template failed" in shown(card) for card in cards)
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().failed == 2
    [line] = failure_lines(caplog)
    assert "the card template not shown on a card: ZeroDivisionError" in line
    forget_counters(app)


async def test_a_card_stops_redacting_when_its_time_budget_is_spent(lark_receiver: LarkReceiver) -> None:
    def slow_scrub(text: str) -> str:  # stands for any pass that takes too long: burns CPU time
        started = time.thread_time()
        while time.thread_time() - started < 0.2:
            pass
        return text

    app = failing_app(webhook_url=lark_receiver.url, scrub=slow_scrub)
    async with client_for(app) as client:
        response = await client.post("/echo-fail", json={"order": 1}, headers={"x-trace": "t"})
    assert response.status_code == 500
    [card] = lark_receiver.wait_for_cards(1, timeout=30)
    text = shown(card)
    assert "response body (the card's time budget ran out)" in text
    assert card_title(card) == "500 POST /echo-fail"
    forget_counters(app)
