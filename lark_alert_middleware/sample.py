"""A realistic sample alert: checks templates at start-up and feeds `preview` and `send-test`."""

from __future__ import annotations

import json

from .event import CapturedBody, ErrorEvent
from .fingerprint import fingerprint_of
from .redact import Redactor
from .view import AlertView, Repeats, build_view


def _sample_exception() -> ZeroDivisionError:
    try:
        _ = 1 / 0
    except ZeroDivisionError as error:
        return error
    raise AssertionError("unreachable")


def sample_event() -> ErrorEvent:
    request = json.dumps({"order_id": 42, "quantity": 0, "card_token": "tok_sample"}).encode()
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


def sample_view(redactor: Redactor) -> AlertView:
    event = sample_event()
    fingerprint = fingerprint_of(event.method, event.route, event.status_code, event.exception)
    return build_view(event, fingerprint, Repeats(3, 1_767_225_540.0), redactor)
