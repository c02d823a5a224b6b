"""Realistic sample alerts, one per source: they check templates at start-up (the HTTP one) and
feed `lark-alert preview --source` and `send-test`; and a sample of each kind of card
(`lark-alert preview --kind`, the demo inbox's page of kinds)."""

from __future__ import annotations

import dataclasses

from .._records import (
    BACK,
    BACKGROUND,
    CAPTURE,
    HTTP,
    LOG,
    NEW,
    ONGOING,
    RELAY,
    STARTUP,
    WEBSOCKET,
    CapturedBody,
    DailySummary,
    ErrorEvent,
    Escalation,
    EscalationNotice,
    ExceptionText,
    History,
    Notice,
    Recovery,
    RecoveryNotice,
    Repeats,
    SummaryLine,
)
from .redact import Redactor
from .view import AlertView, ExceptionView, build_view


def _sample_exception() -> ZeroDivisionError:
    try:
        _ = 1 / 0
    except ZeroDivisionError as error:
        return error
    raise AssertionError("unreachable")


def sample_event() -> ErrorEvent:
    request = b'{"order_id": 42, "quantity": 0, "card_token": "tok_sample"}'
    response = b"Internal Server Error"
    return ErrorEvent(
        timestamp=1_767_225_600.0,
        duration_seconds=0.0123,
        method="POST",
        scheme="https",
        path="/orders/42/split",
        route="/orders/{order_id}/split",
        query_string="dry_run=false&api_key=sample-key",
        headers=(
            ("host", "shop.example.com"),
            ("content-type", "application/json"),
            ("authorization", "Bearer sample-token-value"),
            ("user-agent", "sample-client/1.0"),
            ("x-request-id", "3f1c2d9e8b7a4c6d"),
        ),
        client="203.0.113.7:51234",
        request_id="3f1c2d9e8b7a4c6d",
        status_code=500,
        request_body=CapturedBody(request, len(request), "application/json"),
        response_body=CapturedBody(response, len(response), "text/plain; charset=utf-8"),
        exception=_sample_exception(),
    )


# A traceback as a service would have it: the real one would show where this package is installed.
SAMPLE_TRACEBACK = """Traceback (most recent call last):
  File "/srv/shop/orders/api.py", line 88, in split_order
    shares = split_total(order.total, parts=body.quantity)
  File "/srv/shop/orders/pricing.py", line 31, in split_total
    return total // parts
           ~~~~~~^^~~~~~
ZeroDivisionError: integer division or modulo by zero"""


SAMPLE_FINGERPRINT = "POST /orders/{order_id}/split 500 ZeroDivisionError"
SAMPLE_EXCEPTION = ("ZeroDivisionError", "integer division or modulo by zero")


def sample_events() -> dict[str, tuple[ErrorEvent, str]]:
    """A sample event of every source, with its fingerprint."""
    http = sample_event()
    request = {
        "timestamp": http.timestamp,
        "method": "POST",
        "path": "/orders/42/export",
        "route": "/orders/{order_id}/export",
        "request_id": http.request_id,
    }
    error = _sample_exception()
    return {
        HTTP: (http, SAMPLE_FINGERPRINT),
        BACKGROUND: (
            ErrorEvent(
                **request,  # type: ignore[arg-type]
                status_code=200,
                exception=error,
                source=BACKGROUND,
                subject="ZeroDivisionError in background task after 200 POST /orders/{order_id}/export",
                fingerprint="POST /orders/{order_id}/export after response ZeroDivisionError",
            ),
            "POST /orders/{order_id}/export after response ZeroDivisionError",
        ),
        WEBSOCKET: (
            ErrorEvent(
                timestamp=http.timestamp,
                duration_seconds=754.2,
                method="WEBSOCKET",
                path="/live/orders/42",
                route="/live/orders/{order_id}",
                request_id=http.request_id,
                exception=error,
                source=WEBSOCKET,
                subject="ZeroDivisionError in websocket /live/orders/{order_id}",
                fingerprint="WEBSOCKET /live/orders/{order_id} ZeroDivisionError",
                details=(("Connected for", "12 min 34 s"), ("Messages", "41 received, 39 sent")),
            ),
            "WEBSOCKET /live/orders/{order_id} ZeroDivisionError",
        ),
        LOG: (
            ErrorEvent(
                **request,  # type: ignore[arg-type]
                source=LOG,
                level="error",
                logger_name="shop.payments",
                subject="payment provider timed out, order 42 left unpaid",
                message="payment provider timed out, order 42 left unpaid",
                fingerprint="LOG shop.payments ERROR payment provider timed out, order %s left unpaid",
                details=(("provider", "acme-pay"), ("attempt", "3")),
            ),
            "LOG shop.payments ERROR payment provider timed out, order %s left unpaid",
        ),
        CAPTURE: (
            ErrorEvent(
                timestamp=http.timestamp,
                exception=error,
                source=CAPTURE,
                subject="ZeroDivisionError: integer division or modulo by zero",
                fingerprint="CAPTURE ZeroDivisionError shop.billing:split_total",
                details=(("job", "nightly-invoices"), ("customer", "1234")),
            ),
            "CAPTURE ZeroDivisionError shop.billing:split_total",
        ),
        STARTUP: (
            ErrorEvent(
                timestamp=http.timestamp,
                exception=error,
                source=STARTUP,
                level="critical",
                subject="start-up failed: ZeroDivisionError: integer division or modulo by zero",
                fingerprint="STARTUP ZeroDivisionError",
            ),
            "STARTUP ZeroDivisionError",
        ),
        RELAY: (
            ErrorEvent(
                timestamp=http.timestamp,
                source=RELAY,
                level="critical",
                # As the relay makes it of an Alertmanager notification (`_sources/relay/`).
                subject="HighErrorRate (instance=checkout-2:8000)",
                message="Checkout answers 7.3% of requests with a 5xx\n\n"
                "The 5xx rate of checkout-2:8000 has been above 5% for 10 minutes.",
                logger_name="Alertmanager",
                fingerprint="RELAY alertmanager 3f1c2d9e8b7a4c6d",
                labels=(
                    ("alertname", "HighErrorRate"),
                    ("instance", "checkout-2:8000"),
                    ("service", "checkout"),
                    ("severity", "critical"),
                ),
                details=(("In this group", "and 2 still firing"),),
                links=(
                    (
                        "Source",
                        "https://prometheus.example.com/graph?g0.expr=job%3Ahttp_5xx_ratio%3Arate5m+%3E+0.05",
                    ),
                    (
                        "Silence",
                        "https://alertmanager.example.com/#/silences/new?filter=%7Balertname%3D%22HighErrorRate%22%7D",
                    ),
                    ("Runbook", "https://runbooks.example.com/high-error-rate"),
                ),
            ),
            "RELAY alertmanager 3f1c2d9e8b7a4c6d",
        ),
    }


def sample_view(redactor: Redactor, source: str = HTTP) -> AlertView:
    """The view of a source's sample alert, with a traceback as a service would have it."""
    event, fingerprint = sample_events()[source]
    view = build_view(event, fingerprint, Repeats(3, 1_767_225_540.0), redactor)
    if view.exception is None:
        return view
    exception = ExceptionView(*SAMPLE_EXCEPTION, SAMPLE_TRACEBACK)
    return dataclasses.replace(view, exception=exception)


# Each kind of card: an error's first card in a window (new, back, or repeated: ongoing), and
# the notices that speak of errors already carded.
ALERT_KINDS = {NEW: "new", BACK: "back", ONGOING: "repeated"}
NOTICE_KINDS = ("escalation", "recovered", "summary")
KINDS = (*ALERT_KINDS.values(), *NOTICE_KINDS)
DAY = 24 * 3600.0


def sample_history(kind: str) -> tuple[History, Repeats | None]:
    """The history (and repeats) of the sample alert as its `kind` of first card shows them."""
    now = sample_event().timestamp
    if kind == "new":
        return History(NEW, None, None, 1), None
    if kind == "back":
        return History(BACK, now - 3 * DAY - 7200, now - 20 * DAY, 1234), None
    return History(ONGOING, now - 60, now - 2 * DAY, 97), Repeats(3, now - 60)


def sample_notice(kind: str) -> Notice:
    """A sample notice of `kind` (one of NOTICE_KINDS), about the sample alert and two others."""
    event, fingerprint = sample_events()[HTTP]
    now = event.timestamp
    if kind == "escalation":
        example = dataclasses.replace(event.slim(), exception_text=ExceptionText(*SAMPLE_EXCEPTION, ""))
        escalation = Escalation(fingerprint, example, 1000, 1042, now - 241, now)
        return EscalationNotice(0, (escalation,), (10, 100, 1000, 10000))
    if kind == "recovered":
        recovery = Recovery(
            "sample", "500 POST /orders/{order_id}/split", "error", now - 7380, now - 600, 1234
        )
        return RecoveryNotice((recovery,), now)
    lines = (
        SummaryLine("500 POST /orders/{order_id}/split", "error", 1234, new=True, firing=True),
        SummaryLine("404 GET /orders/{order_id}", "warning", 310, new=False, firing=False),
        SummaryLine(
            "LOG shop.payments ERROR payment provider timed out, order %s left unpaid",
            "error",
            7,
            True,
            False,
        ),
    )
    return DailySummary(now - DAY, now, 1551, 5, 2, lines)
