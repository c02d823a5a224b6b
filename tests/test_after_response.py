"""Failures after the response: a background task after a 200, a stream that broke after a 2xx start."""

from __future__ import annotations

import pytest
from starlette.types import Message

from lark_alert_middleware import ErrorEvent
from lark_alert_middleware._sources.after_response import Moment, moment_of
from lark_alert_middleware.testing import LarkReceiver

from .apps import beyond_requests_app
from .conftest import card_text, card_title, client_for, find_middleware, shown_text

pytestmark = pytest.mark.anyio

ALERTING = frozenset({404, 500, 503})


def note(card: dict[str, object]) -> str:
    """The card's last line: its fingerprint."""
    elements = card["elements"]
    assert isinstance(elements, list)
    return str(elements[-1]["elements"][0]["content"])


async def test_a_background_task_failing_after_a_200_says_what_failed_and_when(
    lark_receiver: LarkReceiver,
) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        response = await client.post("/export", headers={"x-request-id": "export-77"})
    assert response.status_code == 200 and response.json() == {"queued": True}
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "RuntimeError in background task after 200 POST /export"
    assert note(card) == "POST /export after response RuntimeError"
    assert card["header"]["template"] == "red"
    text = shown_text(card)
    assert "after the response" in text  # the source
    assert "export-77" in text
    assert "**Client**\n127.0.0.1:123" in text  # httpx's ASGITransport's client address
    assert "the export could not be written" in text
    assert "Traceback" in text and "in write_file" in text  # the task's own frames


async def test_repeats_of_a_failing_background_task_make_one_card(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        for _ in range(5):
            assert (await client.post("/export")).status_code == 200
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(10)
    assert alerter.stats().raised == 5 and alerter.stats().deduplicated == 4
    assert len(lark_receiver.cards) == 1


async def test_background_failures_group_by_exception_type_not_by_status(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        await client.post("/export?status=200")
        await client.post("/export?status=201")  # the same error: its status is not part of it
        await client.post("/export?fail=disk")
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(10)
    assert sorted(note(card) for card in lark_receiver.cards) == [
        "POST /export after response RuntimeError",
        "POST /export after response tests.apps.ExportError",
    ]


async def test_a_stream_failing_after_a_2xx_start_says_while_streaming(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        await client.get("/stream/broken")
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "RuntimeError while streaming after 200 GET /stream/broken"
    assert note(card) == "GET /stream/broken after response RuntimeError"
    assert "the stream broke after one part" in card_text(card)


async def test_a_stream_failing_after_an_alerting_start_keeps_the_failing_response_card(
    lark_receiver: LarkReceiver,
) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        await client.get("/stream/broken?status=503")
    [card] = lark_receiver.wait_for_cards(1)
    assert card_title(card) == "503 GET /stream/broken"
    assert note(card) == "GET /stream/broken 503 RuntimeError"
    assert "first part" in card_text(card)  # what was sent of the response


async def test_a_whole_alerting_response_whose_task_fails_makes_two_cards(
    lark_receiver: LarkReceiver,
) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        assert (await client.post("/export?status=500")).status_code == 500
    cards = lark_receiver.wait_for_cards(2)
    by_title = {card_title(card): card for card in cards}
    assert set(by_title) == {"500 POST /export", "RuntimeError in background task after 500 POST /export"}
    response_card = by_title["500 POST /export"]
    assert note(response_card) == "POST /export 500"  # the response alone: no exception in it
    assert "queued" in card_text(response_card)


async def test_a_task_failing_after_a_known_repeat_still_alerts(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url)
    async with client_for(app) as client:
        await client.post("/export?status=404&fail=none")
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.flush(10)
        await client.post("/export?status=404&fail=later")  # its 404 is a repeat; its task fails anew
    assert alerter.flush(10)
    titles = sorted(card_title(card) for card in lark_receiver.cards)
    assert titles == ["404 POST /export", "tests.apps.ExportError in background task after 404 POST /export"]


async def test_a_custom_fingerprint_sees_the_background_event(lark_receiver: LarkReceiver) -> None:
    seen: list[ErrorEvent] = []

    def fingerprint(event: ErrorEvent) -> str:
        seen.append(event)
        return f"custom {event.source}"

    app = beyond_requests_app(webhook_url=lark_receiver.url, fingerprint=fingerprint)
    async with client_for(app) as client:
        await client.post("/export")
    [card] = lark_receiver.wait_for_cards(1)
    assert note(card) == "custom background"
    assert [(event.status_code, event.method, event.route) for event in seen] == [(200, "POST", "/export")]


async def test_excluded_paths_exclude_their_background_failures(lark_receiver: LarkReceiver) -> None:
    app = beyond_requests_app(webhook_url=lark_receiver.url, exclude_paths=("/export",))
    async with client_for(app) as client:
        await client.post("/export")
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(10)
    assert lark_receiver.requests == []


START: Message = {"type": "http.response.start", "status": 200}
PART: Message = {"type": "http.response.body", "body": b"x", "more_body": True}
LAST: Message = {"type": "http.response.body", "body": b"x"}


@pytest.mark.parametrize(
    ("status", "last_sent", "moment"),
    [
        (0, None, None),  # nothing sent: a failing request (a 500)
        (200, START, Moment.STREAMING),
        (200, PART, Moment.STREAMING),
        (200, LAST, Moment.BACKGROUND_TASK),
        (503, PART, None),  # an alerting response cut short: its own card, as before
        (503, LAST, Moment.BACKGROUND_TASK),
        (200, {"type": "http.response.pathsend", "path": "/srv/file"}, Moment.BACKGROUND_TASK),
        (200, {"type": "http.response.zerocopysend", "file": 3, "more_body": True}, Moment.STREAMING),
        (200, {"type": "http.response.trailers", "headers": [], "more_trailers": True}, Moment.STREAMING),
        (200, {"type": "http.response.trailers", "headers": []}, Moment.BACKGROUND_TASK),
    ],
)
def test_when_an_exception_escaped_is_read_from_the_last_message_sent(
    status: int, last_sent: Message | None, moment: Moment | None
) -> None:
    assert moment_of(status, last_sent, ALERTING) is moment
