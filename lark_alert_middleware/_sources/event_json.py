"""An ErrorEvent from a small JSON document, for `lark-alert preview --event FILE`.

    {"method": "POST", "path": "/orders/42", "route": "/orders/{order_id}", "status_code": 500,
     "headers": {"content-type": "application/json"}, "query_string": "debug=1",
     "request_body": {"order_id": 42}, "response_body": "Internal Server Error",
     "exception": {"type": "ZeroDivisionError", "message": "division by zero"}}

Only `method`, `path` and `status_code` are required. A body given as a JSON object or list
is JSON; a string is text. The exception's traceback is its own line only.
"""

from __future__ import annotations

import time
from json import dumps as json_dumps
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._records import NO_BODY, CapturedBody, ErrorEvent

JsonBody = str | dict[str, Any] | list[Any] | None


class ExceptionDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(pattern=r"^[A-Za-z_][\w.]*$", max_length=200)
    message: str = ""


class EventDocument(BaseModel):
    """The JSON shape of an event; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(pattern=r"^[A-Za-z]{1,16}$")
    path: str = Field(pattern=r"^/")
    status_code: int = Field(ge=100, le=599)
    route: str | None = None
    query_string: str = ""
    headers: dict[str, str] | list[tuple[str, str]] = Field(default_factory=dict)
    request_body: JsonBody = None
    response_body: JsonBody = None
    exception: ExceptionDocument | None = None
    request_id: str | None = None
    client: str | None = None
    duration_ms: float = Field(0.0, ge=0)
    timestamp: float | None = None
    scheme: str = Field("https", pattern=r"^https?$")


def _body(value: JsonBody, content_type: str | None) -> CapturedBody:
    if value is None:
        return NO_BODY
    if isinstance(value, str):
        data = value.encode()
        return CapturedBody(data, len(data), content_type or "text/plain; charset=utf-8")
    data = json_dumps(value, ensure_ascii=False).encode()
    return CapturedBody(data, len(data), content_type or "application/json")


def _exception(document: ExceptionDocument | None) -> BaseException | None:
    """An exception whose type reads as given: `ValueError`, or `app.errors.OrderError`."""
    if document is None:
        return None
    module, _, name = document.type.rpartition(".")
    kind: type[Exception] = type(
        name, (Exception,), {"__module__": module or "builtins", "__qualname__": name}
    )
    return kind(document.message)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "the event"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def event_from_json(text: str) -> ErrorEvent:
    """Parse an event document; ValueError names each field that is wrong."""
    try:
        document = EventDocument.model_validate_json(text)
    except ValidationError as error:
        raise ValueError(f"invalid event: {_describe(error)}") from None
    pairs = document.headers.items() if isinstance(document.headers, dict) else document.headers
    headers = tuple((name.lower(), value) for name, value in pairs)
    header = dict(headers)
    return ErrorEvent(
        timestamp=time.time() if document.timestamp is None else document.timestamp,
        duration_seconds=document.duration_ms / 1000,
        method=document.method.upper(),
        scheme=document.scheme,
        path=document.path,
        route=document.route,
        query_string=document.query_string,
        headers=headers,
        client=document.client,
        request_id=document.request_id or header.get("x-request-id") or "preview",
        status_code=document.status_code,
        request_body=_body(document.request_body, header.get("content-type")),
        response_body=_body(document.response_body, None),
        exception=_exception(document.exception),
    )
