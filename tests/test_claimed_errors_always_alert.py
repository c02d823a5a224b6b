"""A claimed error always produces a card: what cannot be shown is left out and named, never the alert."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lark_alert_middleware import ErrorEvent, default_fingerprint
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import card_text, card_title, client_for, find_middleware, shown_text

pytestmark = pytest.mark.anyio


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
    ("content_type", "body", "shown_of_it"),
    [
        ("application/json; charset=undefined", b'{"order": 1}', '"order": 1'),
        ("text/plain; charset=idna", b"\xff\xfe" + b"x" * 100, "x" * 50),
        ("text/plain; charset=punycode", b"order-\x80" * 20, "order-\ufffdorder-"),
        ("application/json", b"[" * 1200 + b"]" * 1200, "[" * 100),
        ("application/json", b'{"a":' * 600 + b"1" + b"}" * 600, '"a": {'),
        ("application/json", b'{"name": "\\ud800"}', '"name": "\\ud800"'),
    ],
    ids=["undefined-charset", "idna", "punycode", "deep-list", "deep-object", "lone-surrogate"],
)
async def test_any_body_a_client_sends_still_produces_its_card_and_is_shown(
    lark_receiver: LarkReceiver, content_type: str, body: bytes, shown_of_it: str
) -> None:
    app = failing_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        response = await client.post("/echo-fail", content=body, headers={"content-type": content_type})
    assert response.status_code == 500
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "500 POST /echo-fail"
    text = shown_text(card)
    assert "Request body" in text and shown_of_it in text
    assert "Not shown" not in text
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().failed == 0


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
        text = shown_text(card)
        assert "**Not shown**: query (RuntimeError)" in text
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
    assert all("Not shown: the card template failed" in shown_text(card) for card in cards)
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(5)
    assert alerter.stats().failed == 2
    [line] = failure_lines(caplog)
    assert "the card template not shown on a card: ZeroDivisionError" in line
    forget_counters(app)


async def test_a_card_stops_redacting_when_its_time_budget_is_spent(lark_receiver: LarkReceiver) -> None:
    def slow_scrub(text: str) -> str:  # stands for any pass that takes too long: burns CPU time
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass
        return text

    app = failing_app(webhook_url=lark_receiver.url, scrub=slow_scrub)
    async with client_for(app) as client:
        response = await client.post("/echo-fail", json={"order": 1}, headers={"x-trace": "t"})
    assert response.status_code == 500
    [card] = lark_receiver.wait_for_cards(1, timeout=30)
    text = shown_text(card)
    assert "response body (the card's time budget ran out)" in text
    assert card_title(card) == "500 POST /echo-fail"
    forget_counters(app)


async def test_a_custom_template_s_card_also_says_what_was_not_shown(
    lark_receiver: LarkReceiver, tmp_path: Path
) -> None:
    template = tmp_path / "bare.json.j2"
    template.write_text(
        '{"elements": [{"tag": "markdown", "content": "{{ title }} {{ request_body.text }}"}]}'
    )

    def scrub(text: str) -> str:
        if "sensitive" in text:
            raise RuntimeError("a bug in the user's scrub hook")
        return text

    app = failing_app(webhook_url=lark_receiver.url, template=str(template), scrub=scrub)
    async with client_for(app) as client:
        await client.post("/echo-fail", content=b"sensitive", headers={"content-type": "text/plain"})
    [card] = lark_receiver.wait_for_cards(1)
    assert card["elements"][-1]["content"] == "**Not shown**: request body &#40;RuntimeError&#41;"
    forget_counters(app)


async def test_a_pass_that_hangs_holds_neither_the_alerter_nor_the_card_which_keeps_its_mention(
    lark_receiver: LarkReceiver,
) -> None:
    release = threading.Event()

    def hanging_scrub(text: str) -> str:  # stands for a hook that calls out and never hears back
        if "hang" in text:
            release.wait(30)
        return text

    app = failing_app(webhook_url=lark_receiver.url, scrub=hanging_scrub, mention="ou_oncall")
    try:
        async with client_for(app) as client:
            assert (await client.get("/status/500?note=hang")).status_code == 500
            assert (await client.get("/status/503")).status_code == 503  # waits behind the held one
            cards = lark_receiver.wait_for_cards(2, timeout=30)
    finally:
        release.set()
    assert sorted(card_title(card) for card in cards) == [
        "500 GET /status/{status}",
        "503 GET /status/{status}",
    ]
    for card in cards:
        text = shown_text(card)
        assert "making the card took longer than 5s" in text
        assert "<at id=ou_oncall></at>" in card_text(card)
        assert "hang" not in text  # nothing unredacted: the query was not shown at all
    forget_counters(app)


async def test_a_custom_fingerprint_with_undecodable_bytes_alerts_and_silences_nothing_beside_it(
    lark_receiver: LarkReceiver,
) -> None:
    def by_body(event: ErrorEvent) -> str:
        return event.request_body.data.decode("utf-8", "surrogateescape") or default_fingerprint(event)

    app = failing_app(webhook_url=lark_receiver.url, fingerprint=by_body)
    async with client_for(app) as client:
        await client.post("/echo-fail", content=b"order \xff")
        await client.get("/boom/value")
    cards = lark_receiver.wait_for_cards(2)
    assert sorted(card_title(card) for card in cards) == ["500 GET /boom/{kind}", "500 POST /echo-fail"]
    assert any("order \\\\udcff" in card_text(card) for card in cards)
