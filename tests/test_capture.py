"""capture_exception, capture_message, report_errors and configure: errors code reports itself.

In process; a plain `python script.py` that reports and exits is in
tests/integration/test_capture_script.py.
"""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from lark_alert_middleware import (
    ConfigurationError,
    LarkAlertMiddleware,
    capture_exception,
    capture_message,
    configure,
    report_errors,
)
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._pipeline.current import current_pipeline
from lark_alert_middleware.testing import LarkReceiver

from .conftest import card_full_title, card_title, find_middleware, shown_text

pytestmark = pytest.mark.usefixtures("process_pipeline")


def flushed_cards(lark: LarkReceiver) -> list[dict[str, object]]:
    pipeline = current_pipeline.get()
    assert pipeline is not None and pipeline.flush(10)
    return lark.cards


def split_total(total: int, parts: int) -> int:
    return total // parts


def charge(order: int) -> None:
    raise ValueError(f"card declined for order {order}")


def test_capture_exception_reports_the_exception_being_handled_with_its_context_redacted(
    lark_receiver: LarkReceiver,
) -> None:
    configure(webhook_url=lark_receiver.url, service="billing")
    try:
        split_total(10, 0)
    except ZeroDivisionError:
        capture_exception(job="nightly-invoices", customer=1234, password="hunter2-secret")
    [card] = flushed_cards(lark_receiver)
    assert (
        card_full_title(card)
        == "🔴 🆕 ZeroDivisionError: integer division or modulo by zero · billing · production"
    )
    text = shown_text(card)
    for fact in ("reported by the code", "**job**\nnightly-invoices", "**customer**\n1234", "in split_total"):
        assert fact in text
    assert "hunter2-secret" not in text and "[redacted password]" in text
    assert f"CAPTURE ZeroDivisionError {__name__}:split_total" in text


def test_capture_exception_with_nothing_being_handled_reports_nothing(lark_receiver: LarkReceiver) -> None:
    configure(webhook_url=lark_receiver.url)
    capture_exception()
    assert flushed_cards(lark_receiver) == []


def test_one_bug_with_different_messages_is_one_error_and_another_place_is_another(
    lark_receiver: LarkReceiver,
) -> None:
    configure(webhook_url=lark_receiver.url)
    for order in range(20):
        try:
            charge(order)
        except ValueError as error:
            capture_exception(error)
    capture_exception(ValueError("made, never raised"))  # where it was reported: this test
    titles = sorted(card_title(card) for card in flushed_cards(lark_receiver))  # posted concurrently
    assert titles == ["ValueError: card declined for order 0", "ValueError: made, never raised"]
    pipeline = current_pipeline.get()
    assert pipeline is not None and pipeline.stats().deduplicated == 19


def test_an_exception_is_reported_once_whoever_reports_it_again(lark_receiver: LarkReceiver) -> None:
    configure(webhook_url=lark_receiver.url)
    try:
        charge(1)
    except ValueError as error:
        capture_exception(error)
        capture_exception(error)
    pipeline = current_pipeline.get()
    assert pipeline is not None and pipeline.flush(10)
    assert pipeline.stats().raised == 1


@pytest.mark.parametrize(
    ("level", "colour", "icon"), [("error", "red", "🔴"), ("WARNING", "orange", "🟠"), ("info", "blue", "🔵")]
)
def test_capture_message_reports_text_at_its_level(
    lark_receiver: LarkReceiver, level: str, colour: str, icon: str
) -> None:
    configure(webhook_url=lark_receiver.url)
    capture_message("disk almost full on <at id=all></at> {{ host }}", level=level, free="2%")
    [card] = flushed_cards(lark_receiver)
    assert card["header"]["template"] == colour  # type: ignore[index]
    title = card_full_title(card)
    assert title.startswith(f"{icon} 🆕 disk almost full on <at id=all></at> {{{{ host }}}} · ")
    assert "**free**\n2%" in shown_text(card)
    assert count_mentions(markdown_text(card)) == 0  # shown as text, pinging nobody


def test_report_errors_reports_and_reraises_from_a_function(lark_receiver: LarkReceiver) -> None:
    configure(webhook_url=lark_receiver.url)

    @report_errors
    def nightly(order: int) -> None:
        charge(order)

    with pytest.raises(ValueError, match="order 7"):
        nightly(7)
    [card] = flushed_cards(lark_receiver)
    assert card_title(card) == "ValueError: card declined for order 7"
    assert nightly.__name__ == "nightly"


def test_report_errors_with_context_reports_and_reraises_from_a_coroutine(
    lark_receiver: LarkReceiver,
) -> None:
    configure(webhook_url=lark_receiver.url)

    @report_errors(job="nightly-invoices")
    async def nightly(order: int) -> int:
        await anyio.lowlevel.checkpoint()
        charge(order)
        return order

    with pytest.raises(ValueError, match="order 8"):
        anyio.run(nightly, 8)
    [card] = flushed_cards(lark_receiver)
    assert card_title(card) == "ValueError: card declined for order 8"
    assert "**job**\nnightly-invoices" in shown_text(card)


def test_report_errors_lets_results_and_control_flow_exceptions_through(lark_receiver: LarkReceiver) -> None:
    configure(webhook_url=lark_receiver.url)

    @report_errors
    def stop() -> None:
        raise KeyboardInterrupt

    assert report_errors(lambda: 41)() == 41
    with pytest.raises(KeyboardInterrupt):
        stop()
    assert flushed_cards(lark_receiver) == []


def test_inside_an_app_capture_uses_the_middlewares_pipeline(lark_receiver: LarkReceiver) -> None:
    app = FastAPI(title="orders")

    @app.get("/refund")
    def refund() -> dict[str, bool]:
        try:
            charge(3)
        except ValueError:
            capture_exception(order=3)
        return {"refunded": False}

    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url)
    with TestClient(app) as client:
        assert client.get("/refund").status_code == 200
    [card] = lark_receiver.wait_for_cards(1)
    assert card_full_title(card) == "🔴 🆕 ValueError: card declined for order 3 · orders · production"
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.stats().raised == 1


def test_outside_any_app_the_pipeline_is_built_from_the_environment(
    lark_receiver: LarkReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LARK_WEBHOOK_URL", lark_receiver.url)
    monkeypatch.setenv("LARK_ALERT_SERVICE", "invoicer")
    capture_message("nightly run skipped")
    [card] = flushed_cards(lark_receiver)
    assert card_full_title(card) == "🔴 🆕 nightly run skipped · invoicer · production"


def test_configure_refuses_a_bad_option_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="LARK_ALERT_RATE_LIMIT"):
        configure(rate_limit=-1)


def test_a_bad_environment_silences_nothing_else_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LARK_ALERT_RATE_LIMIT", "often")
    with caplog.at_level(logging.ERROR, logger="lark_alert_middleware"):
        capture_message("nothing to send it with")
        try:
            charge(1)
        except ValueError:
            capture_exception()
    assert [record.getMessage().count("LARK_ALERT_RATE_LIMIT") for record in caplog.records] == [1]


def test_disabled_alerting_reports_nothing(lark_receiver: LarkReceiver) -> None:
    configure(webhook_url=lark_receiver.url, enabled=False)
    capture_message("not sent")
    assert current_pipeline.get() is None
    assert lark_receiver.requests == []
