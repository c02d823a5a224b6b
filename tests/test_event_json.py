"""`preview --event`: a small JSON document becomes the event a real request would have captured."""

from __future__ import annotations

import json

import pytest

from lark_alert_middleware._pipeline.fingerprint import default_fingerprint, exception_name
from lark_alert_middleware._sources.event_json import event_from_json


def test_three_fields_are_enough() -> None:
    event = event_from_json('{"method": "get", "path": "/items/7", "status_code": 404}')
    assert (event.method, event.path, event.status_code, event.route) == ("GET", "/items/7", 404, None)
    assert event.exception is None and event.request_body.size == 0
    assert default_fingerprint(event) == "GET <unmatched> 404"


def test_every_field_reaches_the_event() -> None:
    document = {
        "method": "POST",
        "path": "/orders/42",
        "route": "/orders/{order_id}",
        "status_code": 500,
        "headers": {"Content-Type": "application/json", "X-Request-ID": "abc123"},
        "query_string": "debug=1",
        "request_body": {"order_id": 42},
        "response_body": "Internal Server Error",
        "exception": {"type": "app.errors.OrderError", "message": "no stock"},
        "duration_ms": 12.5,
        "client": "203.0.113.7:1234",
        "timestamp": 1_767_225_600,
    }
    event = event_from_json(json.dumps(document))
    assert event.headers == (("content-type", "application/json"), ("x-request-id", "abc123"))
    assert event.request_id == "abc123"
    assert event.request_body.data == b'{"order_id": 42}'
    assert event.request_body.content_type == "application/json"
    assert event.response_body.content_type == "text/plain; charset=utf-8"
    assert exception_name(event.exception) == "app.errors.OrderError"
    assert str(event.exception) == "no stock"
    assert (event.duration_seconds, event.timestamp, event.query_string) == (0.0125, 1_767_225_600, "debug=1")
    assert default_fingerprint(event) == "POST /orders/{order_id} 500 app.errors.OrderError"


def test_a_builtin_exception_name_reads_as_python_writes_it() -> None:
    text = '{"method": "GET", "path": "/", "status_code": 500, "exception": {"type": "ZeroDivisionError"}}'
    assert exception_name(event_from_json(text).exception) == "ZeroDivisionError"


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ('{"method": "GET", "status_code": 404}', "path: Field required"),
        ('{"method": "GET", "path": "/", "status_code": 700}', "status_code: Input should be less"),
        ('{"method": "GET", "path": "/", "status_code": 404, "body": ""}', "body: Extra inputs"),
        (
            '{"method": "GET", "path": "/", "status_code": 500, "exception": {"type": "1 x"}}',
            "exception.type",
        ),
        ("{not json", "Invalid JSON"),
    ],
)
def test_a_wrong_document_names_the_field(document: str, named: str) -> None:
    with pytest.raises(ValueError, match="invalid event") as raised:
        event_from_json(document)
    assert named in str(raised.value)
