"""LarkAlertHandler: log records as errors, grouped by their template, never feeding on themselves.

In process, with a real pipeline and the Lark-compatible receiver; the same through uvicorn is
in tests/integration/test_log_capture.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from lark_alert_middleware import ConfigurationError, LarkAlertHandler, LarkAlertMiddleware, capture_exception
from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CARD_BUDGET
from lark_alert_middleware._card.view import CardSettings
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware._pipeline.build import build_pipeline
from lark_alert_middleware._pipeline.loop import background_loop
from lark_alert_middleware._pipeline.pipeline import Pipeline
from lark_alert_middleware._records import Alert, Repeats
from lark_alert_middleware._sources.context import request_scope, tracking
from lark_alert_middleware._sources.logs import STANDARD_ATTRIBUTES, log_event
from lark_alert_middleware.testing import LarkReceiver

from .conftest import card_full_title, card_title, find_middleware, shown_text

UNPAID = "payment provider timed out, order %s left unpaid"
HOSTILE = "<at id=all></at> {{ 7*7 }} {% raw %} **bold** [x](https://evil.example) ``` \udcff"


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


@dataclass
class Logged:
    """A logger whose records go to a handler on a pipeline posting to the receiver."""

    logger: logging.Logger
    handler: LarkAlertHandler
    pipeline: Pipeline
    lark: LarkReceiver

    def cards(self) -> list[dict[str, object]]:
        assert self.pipeline.flush(10)
        return self.lark.cards


@pytest.fixture
def logged(lark_receiver: LarkReceiver) -> Iterator[Logged]:
    pipeline = build_pipeline(load_settings(webhook_url=lark_receiver.url, service="shop"))
    handler = LarkAlertHandler(pipeline=pipeline)
    # Outside the logging tree, where pytest's handlers (which fail on hostile records) are not.
    logger = logging.Logger("shop.payments")
    logger.addHandler(handler)
    yield Logged(logger, handler, pipeline, lark_receiver)


def failing_split() -> None:
    raise ZeroDivisionError("order 42 has no parts")


def test_a_record_at_the_level_makes_a_card_with_logger_level_message_extra_and_traceback(
    logged: Logged,
) -> None:
    try:
        failing_split()
    except ZeroDivisionError:
        logged.logger.exception(
            UNPAID, 42, extra={"provider": "acme-pay", "attempt": 3, "api_key": "k-123456"}
        )
    [card] = logged.cards()
    title = card_full_title(card)
    assert title == "🔴 🆕 payment provider timed out, order 42 left unpaid · shop · production"
    text = shown_text(card)
    for fact in (
        "log record · shop.payments · ERROR",
        "**provider**\nacme-pay",
        "**attempt**\n3",
        "ZeroDivisionError**: order 42 has no parts",
        "in failing_split",  # the traceback
        "LOG shop.payments ERROR payment provider timed out, order %s left unpaid ZeroDivisionError",
    ):
        assert fact in text
    assert "k-123456" not in text and "[redacted api_key]" in text


def test_records_below_the_level_make_no_card(logged: Logged) -> None:
    logged.logger.warning(UNPAID, 1)
    logged.handler.setLevel(logging.WARNING)
    logged.logger.info(UNPAID, 2)
    assert logged.cards() == []
    assert logged.pipeline.stats().raised == 0


def test_a_warning_handler_makes_orange_cards_for_warnings(logged: Logged) -> None:
    logged.handler.setLevel("WARNING")
    logged.logger.warning("stock low for %s", "sku-1")
    [card] = logged.cards()
    assert card["header"]["template"] == "orange"  # type: ignore[index]
    assert "log record · shop.payments · WARNING" in shown_text(card)


def test_a_thousand_records_of_one_template_with_different_values_make_one_card(logged: Logged) -> None:
    for order in range(1000):
        logged.logger.error(UNPAID, order)
    assert [card_title(card) for card in logged.cards()] == [
        "payment provider timed out, order 0 left unpaid"
    ]
    stats = logged.pipeline.stats()
    assert (stats.raised, stats.deduplicated) == (1000, 999)


def test_records_group_by_logger_level_and_exception_type_too(logged: Logged) -> None:
    logged.logger.error(UNPAID, 1)
    logged.logger.critical(UNPAID, 2)
    refunds = logging.Logger("shop.payments.refunds")
    refunds.parent = logged.logger
    refunds.error(UNPAID, 3)  # propagates to the handler
    for error in (ValueError("a"), KeyError("b"), ValueError("c")):
        logged.logger.error(UNPAID, 4, exc_info=error)
    titles = sorted(card_full_title(card).split(" · ")[0] for card in logged.cards())
    assert len(titles) == 5  # the second ValueError is a repeat
    assert titles.count("🔴 🆕 payment provider timed out, order 4 left unpaid") == 2


def test_a_message_whose_arguments_do_not_fit_still_alerts(logged: Logged) -> None:
    logged.logger.error("order %s of %s", 42)
    [card] = logged.cards()
    assert "order %s of %s (its arguments could not be formatted: TypeError)" in shown_text(card)


def test_the_packages_own_records_are_never_captured(logged: Logged) -> None:
    logged.handler.setLevel(logging.DEBUG)
    own = logging.getLogger("lark_alert_middleware")
    own.addHandler(logged.handler)
    try:
        own.error("lark_alert_middleware: could not post")
        logging.getLogger("lark_alert_middleware.anything").critical("deeper")
    finally:
        own.removeHandler(logged.handler)
    assert logged.cards() == []


def test_records_made_on_the_alerter_thread_are_never_captured(logged: Logged) -> None:
    logged.handler.setLevel(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx")
    httpx_logger.addHandler(logged.handler)

    async def deliver() -> None:
        httpx_logger.error("HTTP Request: POST https://open.larksuite.com/... 500")

    try:
        background_loop.submit(deliver()).result(10)
        httpx_logger.error("the app's own httpx call failed")  # on this thread: captured
    finally:
        httpx_logger.removeHandler(logged.handler)
    assert [card_title(card) for card in logged.cards()] == ["the app's own httpx call failed"]


def test_records_a_scrub_hook_makes_while_a_card_is_made_are_never_captured(
    lark_receiver: LarkReceiver,
) -> None:
    logger = logging.Logger("shop.payments")

    def scrub(text: str) -> str:
        logger.error("scrubbing %s", len(text))  # on the card maker's thread
        return text

    pipeline = build_pipeline(load_settings(webhook_url=lark_receiver.url), scrub=scrub)
    logger.addHandler(LarkAlertHandler(pipeline=pipeline))
    logger.error("nightly cleanup failed")
    assert pipeline.flush(10)
    assert [card_title(card) for card in lark_receiver.cards] == ["nightly cleanup failed"]
    assert pipeline.stats().raised == 1


def test_an_exception_already_reported_is_not_captured_again(logged: Logged, process_pipeline: None) -> None:
    try:
        failing_split()
    except ZeroDivisionError as error:
        capture_exception(error)  # to the process's pipeline (the log, without a webhook)
        logged.logger.error("split failed", exc_info=error)
    logged.logger.error("split failed", exc_info=ZeroDivisionError("never reported"))
    assert len(logged.cards()) == 1
    assert logged.pipeline.stats().raised == 1


def test_a_repr_that_logs_is_not_captured_while_its_record_is(logged: Logged) -> None:
    class LogsWhenShown:
        def __repr__(self) -> str:
            logged.logger.error("logged from inside __repr__")
            return "<shown>"

    logged.logger.error("order failed", extra={"order": LogsWhenShown()})
    [card] = logged.cards()
    assert card_title(card) == "order failed"
    assert "**order**\n<shown>" in shown_text(card)


def test_hostile_messages_and_extra_fields_make_a_card_that_shows_them_as_text(logged: Logged) -> None:
    megabyte = "x" * (1024 * 1024)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    looped: list[object] = []
    looped.append(looped)
    extra = {"markup": HOSTILE, "object": ReprRaises(), "big": megabyte, "nested": [[[[ReprRaises()]]]]}
    extra |= {"deep": deep, "looped": looped, "bytes": b"\xff\xfe not utf-8"}
    logged.logger.error(HOSTILE + " %s %s", ReprRaises(), megabyte, extra=extra)
    [card] = logged.cards()
    assert count_mentions(markdown_text(card)) == 0
    title = card_full_title(card)
    assert "<at id=all></at> {{ 7*7 }} {% raw %}" in title
    text = shown_text(card)
    assert "<ReprRaises instance at" in text and "[[[...]]]" in text
    assert "(its arguments could not be formatted: RuntimeError)" in text


class Hostile:
    """Values code may log: anything, including objects whose __repr__ and __str__ raise."""

    texts = st.one_of(
        st.text(max_size=300),
        st.just(HOSTILE),
        st.integers(0, 2_000_000).map(lambda size: "{{ x }}<at id=all></at>" * (size // 22)),
    )
    values = st.one_of(
        texts,
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(max_size=100),
        st.builds(ReprRaises),
        st.lists(st.one_of(texts, st.builds(ReprRaises)), max_size=5),
        st.dictionaries(st.text(max_size=20), st.builds(ReprRaises), max_size=3),
    )
    extra = st.dictionaries(
        st.text(min_size=1, max_size=40).filter(lambda name: name not in STANDARD_ATTRIBUTES),
        values,
        max_size=8,
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    template=st.one_of(Hostile.texts, st.just("%s and %d"), st.just("%(missing)s"), st.builds(ReprRaises)),
    args=st.lists(Hostile.values, max_size=3).map(tuple),
    extra=Hostile.extra,
)
def test_whatever_is_logged_makes_a_postable_card_that_pings_nobody(
    template: object, args: tuple[object, ...], extra: dict[str, object]
) -> None:
    record = logging.LogRecord("shop.payments", logging.ERROR, __file__, 1, template, args, None)
    for name, value in extra.items():
        record.__dict__[name] = value  # as Logger.makeRecord puts `extra` in (a name may be `__dict__`)
    event = log_event(record, None, "f")
    assert len(event.message or "") <= 16 * 1024
    assert len(event.details) <= 30 and all(len(value) <= 1000 for _, value in event.details)
    made = CardMaker(Redactor(), CardSettings("shop", "production")).alert_card(
        Alert("f", event, Repeats(0, None))
    )
    assert made.complete
    assert made.rendered.size <= CARD_BUDGET
    posted = json.loads(message_body(made.rendered.json_text, None, 1_700_000_000))
    assert count_mentions(markdown_text(posted["card"])) == 0


def test_a_record_logged_during_a_request_carries_it(
    lark_receiver: LarkReceiver, root_logger: object
) -> None:
    app = FastAPI(title="shop")

    @app.post("/orders/{order_id}/pay")
    def pay(order_id: int) -> None:
        logging.getLogger("shop.payments").error(UNPAID, order_id)
        raise ValueError("payment failed")

    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url, capture_logs="ERROR")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/orders/42/pay").status_code == 500
    cards = {card_title(card): shown_text(card) for card in lark_receiver.wait_for_cards(2)}
    log_card = cards["payment provider timed out, order 42 left unpaid"]
    assert "POST /orders/42/pay" in log_card and "/orders/{order_id}/pay" in log_card
    # No X-Request-ID: one made-up id, the same on both cards of the request.
    request_ids = [re.findall(r"Request ID\*\*\n([0-9a-f]{32})", text) for text in cards.values()]
    assert request_ids[0] == request_ids[1] and len(request_ids[0]) == 1


def test_a_record_logged_outside_any_request_carries_none(logged: Logged) -> None:
    logged.logger.error("nightly cleanup failed")
    [card] = logged.cards()
    assert "Request" not in shown_text(card) and "Route" not in shown_text(card)


def test_without_a_handler_requests_do_not_set_the_context_variable(
    monkeypatch: pytest.MonkeyPatch, lark_receiver: LarkReceiver
) -> None:
    monkeypatch.setattr(tracking, "on", False)
    seen: list[object] = []
    app = FastAPI()

    @app.get("/")
    async def root() -> None:
        seen.append(request_scope.get())

    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url)
    with TestClient(app) as client:
        client.get("/")
        monkeypatch.setattr(tracking, "on", True)
        client.get("/")
    assert seen[0] is None and isinstance(seen[1], dict)
    assert request_scope.get() is None  # and reset once the request is over


def test_capture_logs_attaches_to_the_root_logger_at_start_up_and_detaches_at_shutdown(
    lark_receiver: LarkReceiver, root_logger: logging.Logger
) -> None:
    app = FastAPI()
    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url, capture_logs="WARNING")
    before = list(root_logger.handlers)
    with TestClient(app):
        [handler] = [h for h in root_logger.handlers if isinstance(h, LarkAlertHandler)]
        assert handler.level == logging.WARNING
        assert find_middleware(app).alerter is not None
    assert root_logger.handlers == before


def test_capture_logs_attaches_at_the_first_request_without_lifespan(
    lark_receiver: LarkReceiver, root_logger: logging.Logger
) -> None:
    app = FastAPI()
    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url, capture_logs="ERROR")
    client = TestClient(app)  # not entered: no lifespan
    assert not any(isinstance(h, LarkAlertHandler) for h in root_logger.handlers)
    assert client.get("/docs").status_code == 200
    assert any(isinstance(h, LarkAlertHandler) for h in root_logger.handlers)


def test_capture_logs_off_attaches_nothing(lark_receiver: LarkReceiver, root_logger: logging.Logger) -> None:
    app = FastAPI()
    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url, capture_logs="off")
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert not any(isinstance(h, LarkAlertHandler) for h in root_logger.handlers)


@pytest.mark.parametrize("value", ["LOUD", "NOTSET", "-5"])
def test_a_capture_level_that_is_not_a_level_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LARK_ALERT_CAPTURE_LOGS", value)
    with pytest.raises(
        ConfigurationError, match=r"LARK_ALERT_CAPTURE_LOGS \(capture_logs=\): is not a log level"
    ):
        load_settings()


@pytest.mark.parametrize(
    ("value", "level"), [("error", 40), ("WARNING", 30), ("debug", 10), ("25", 25), ("", None)]
)
def test_capture_levels_are_names_in_any_case_or_numbers(
    monkeypatch: pytest.MonkeyPatch, value: str, level: int | None
) -> None:
    monkeypatch.setenv("LARK_ALERT_CAPTURE_LOGS", value)
    assert load_settings().capture_logs == level


def test_an_extra_field_named_like_a_record_internal_is_shown_not_obeyed() -> None:
    record = logging.getLogger("shop").makeRecord(
        "shop",
        logging.ERROR,
        __file__,
        1,
        "order %s unpaid",
        (42,),
        None,
        extra={"__dict__": "<at id=all></at>"},
    )
    event = log_event(record, None, "f")
    assert event.message == "order 42 unpaid"
    assert ("__dict__", "<at id=all></at>") in event.details
