"""The request being served, for errors reported while it is (log records, `capture_*`).

The middleware puts each request's scope in a context variable, but only once something reads
it (`tracking.on`: a `LarkAlertHandler` exists), so that without log capture a request pays one
attribute check for it. Nothing is looked up while the request runs: the method, path, route
and request id are read from the scope only when an error is captured during it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import Scope

from .._pipeline.fingerprint import grouped_method
from .routes import route_template
from .tracing import current_trace_id

request_scope: ContextVar[Scope | None] = ContextVar("lark_alert_middleware.request", default=None)

# Where a request id made up for a request without `X-Request-ID` is kept, so that every card of
# the request (a log record's, the failing response's) shows the same one.
REQUEST_ID_KEY = "lark_alert_middleware.request_id"
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class RequestTracking:
    """Whether middlewares set `request_scope` for each request: off until a handler wants it."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


tracking = RequestTracking()


@dataclass(frozen=True, slots=True)
class RequestFields:
    """What an error reported during a request says about it (empty outside any request)."""

    method: str = ""
    path: str = ""
    route: str | None = None
    request_id: str = ""
    trace_id: str | None = None


def request_id_of(scope: Scope, headers: tuple[tuple[str, str], ...]) -> str:
    """The request's `X-Request-ID`, or an id made up for it once and kept in its scope."""
    kept = scope.get(REQUEST_ID_KEY)
    if isinstance(kept, str):
        return kept
    request_id = next(
        (value for name, value in headers if name == "x-request-id" and _REQUEST_ID.fullmatch(value)),
        None,
    )
    if request_id is None:
        request_id = uuid.uuid4().hex
        with contextlib.suppress(TypeError):  # a scope that cannot be written to: ids may differ
            scope[REQUEST_ID_KEY] = request_id
    return request_id


def current_request() -> RequestFields:
    """The request being served in this context, if a middleware said so; never raises."""
    scope = request_scope.get()
    if scope is None:
        return RequestFields(trace_id=_trace_id(()))
    try:
        headers = tuple(
            (bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
            for name, value in scope.get("headers") or ()
        )
        if scope.get("type") == "websocket":
            method = "WEBSOCKET"
        else:
            method = grouped_method(str(scope.get("method", "")), scope.get("route"))
        return RequestFields(
            method=method,
            path=str(scope.get("path", "")),
            route=route_template(scope),
            request_id=request_id_of(scope, headers),
            trace_id=_trace_id(headers),
        )
    except Exception:
        return RequestFields()  # a scope something changed beyond reading: the error still goes


def _trace_id(headers: tuple[tuple[str, str], ...]) -> str | None:
    try:
        return current_trace_id(headers)
    except Exception:
        return None
