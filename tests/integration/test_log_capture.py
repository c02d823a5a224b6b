"""LARK_ALERT_CAPTURE_LOGS through real uvicorn: records logged by the app become cards, and
nothing the server or the package logs about an alert makes another."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_title, shown_text
from .conftest import Server

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]
APP = "tests.integration.logging_app:app"
UNPAID = "payment provider timed out, order 7 left unpaid"


def test_a_record_logged_in_an_endpoint_makes_one_card_with_the_request(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=APP, LARK_WEBHOOK_URL=lark_receiver.url, LARK_ALERT_CAPTURE_LOGS="ERROR")
    response = httpx.post(f"{server.url}/orders/7/pay", headers={"X-Request-ID": "req-7f3a"})
    assert response.status_code == 200
    server.terminate()
    [card] = lark_receiver.cards
    assert card_title(card) == UNPAID
    text = shown_text(card)
    for fact in ("log record · shop.payments · ERROR", "POST /orders/7/pay", "/orders/{order_id}/pay"):
        assert fact in text
    assert "req-7f3a" in text and "acme-pay" in text


def test_a_thousand_records_with_different_order_numbers_make_one_card(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=APP, LARK_WEBHOOK_URL=lark_receiver.url, LARK_ALERT_CAPTURE_LOGS="ERROR")
    assert httpx.post(f"{server.url}/orders/7/pay?records=1000", timeout=30).status_code == 200
    output = server.terminate()
    assert [card_title(card) for card in lark_receiver.cards] == [UNPAID]
    assert "raised 1000, deduplicated 999, sent 1," in output


def test_an_unhandled_exception_the_server_logs_makes_one_card(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    server = serve(app=APP, LARK_WEBHOOK_URL=lark_receiver.url, LARK_ALERT_CAPTURE_LOGS="ERROR")
    for order in (1, 2):
        assert httpx.get(f"{server.url}/orders/{order}/split").status_code == 500
    output = server.terminate()
    # uvicorn logged both through the root logger, where the handler is: neither made a card.
    assert output.count("ERROR uvicorn.error [MainThread] Exception in ASGI application") == 2
    assert [card_title(card) for card in lark_receiver.cards] == ["500 GET /orders/{order_id}/split"]
    assert "raised 2, deduplicated 1, sent 1," in output


def test_capturing_debug_records_with_a_failing_webhook_does_not_feed_on_itself(
    serve: Serve, lark_receiver: LarkReceiver
) -> None:
    lark_receiver.fail_next("http_500", "drop")
    server = serve(
        app=APP,
        LARK_WEBHOOK_URL=lark_receiver.url,
        LARK_ALERT_CAPTURE_LOGS="DEBUG",
        APP_LOG_LEVEL="DEBUG",
    )
    assert httpx.post(f"{server.url}/orders/7/pay").status_code == 200
    lark_receiver.wait_for_cards(1, timeout=30)  # the third attempt
    output = server.terminate()
    # The package logged the record it captured, on the request's thread; httpx and httpcore
    # logged the failed posts on the alerter thread, and the package its retries ...
    for line in (
        "lark_alert_middleware: captured LOG shop.payments ERROR",
        "DEBUG httpcore.connection [lark-alert-middleware]",
        "INFO httpx [lark-alert-middleware] HTTP Request: POST",
        "retrying in",
    ):
        assert line in output
    # ... and none of it was captured: every post carried the one card.
    assert [UNPAID.encode() in request.body for request in lark_receiver.requests] == [True] * 3
    assert [card_title(card) for card in lark_receiver.cards] == [UNPAID]
    assert "raised 1, deduplicated 0, sent 1, retried 2," in output
