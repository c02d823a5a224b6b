"""A realistic sample alert: checks templates at start-up and feeds `preview` and `send-test`."""

from __future__ import annotations

import dataclasses

from .._records import CapturedBody, ErrorEvent, Repeats
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


def sample_view(redactor: Redactor) -> AlertView:
    event = sample_event()
    view = build_view(event, SAMPLE_FINGERPRINT, Repeats(3, 1_767_225_540.0), redactor)
    exception = ExceptionView("ZeroDivisionError", "integer division or modulo by zero", SAMPLE_TRACEBACK)
    return dataclasses.replace(view, exception=exception)
