"""What the ASGI middleware keeps of an HTTP request: the body tees, and the event it captures.

The tees copy at most `limit` bytes of each body as it streams past, and change nothing of what
passes; the event is built only for an error that will be reported.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import Message, Receive, Scope

from .._pipeline.fingerprint import grouped_method
from .._pipeline.windows import KnownError
from .._records import NO_BODY, CapturedBody, ErrorEvent, Pairs
from .context import request_id_of
from .routes import route_template
from .tracing import current_trace_id

# How much of an unusual method an event keeps: a client chooses it.
SENT_METHOD_CHARACTERS = 40


class BodyBuffer:
    """Keeps the first `limit` bytes of a body that streams past; never more."""

    __slots__ = ("captured", "chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.captured = 0
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - self.captured
        if room > 0:
            kept = chunk[:room]  # the chunk itself when it is bytes and fits: no copy
            if type(kept) is not bytes:
                kept = bytes(kept)  # a memoryview or bytearray the app may reuse for the next chunk
            self.chunks.append(kept)
            self.captured += len(kept)

    def freeze(self, content_type: str | None, content_encoding: str | None) -> CapturedBody:
        return CapturedBody(b"".join(self.chunks), self.size, content_type, content_encoding)


class RequestBodyTee:
    """The app's `receive`: passes every message through unchanged, keeping the body's first bytes."""

    __slots__ = ("_receive", "body")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.body = BodyBuffer(limit)

    async def __call__(self) -> Message:
        message = await self._receive()
        chunk = message.get("body")
        if chunk:
            self.body.add(chunk)
        return message


class ResponseCapture:
    """What a failing response sent: how its body is typed and encoded, and the body's first bytes."""

    __slots__ = ("body", "content_encoding", "content_type")

    def __init__(self, headers: Any, limit: int) -> None:
        # Read now: middlewares outside ours may edit the header list after it passed (GZip does).
        self.content_type = _header(headers, b"content-type")
        self.content_encoding = _header(headers, b"content-encoding")
        self.body = BodyBuffer(limit)

    def add(self, message: Message) -> None:
        chunk = message.get("body")
        if chunk:
            self.body.add(chunk)


class RouteError(KnownError):
    """A failing route, method and status as the request path remembers it, with its dedup window."""

    __slots__ = ("by_mount", "route")

    def __init__(self, route: object, fingerprint: str) -> None:
        super().__init__(fingerprint)
        self.route = route
        # For a route object mounted in several places: the error of each mount (root path).
        self.by_mount: dict[str, RouteError] | None = None


def captured_event(
    scope: Scope,
    status: int,
    exception: BaseException | None,
    duration: float,
    request_tee: RequestBodyTee | None,
    response: ResponseCapture | None,
) -> ErrorEvent:
    """The event of a failing request, from its scope and what the tees kept."""
    headers = request_headers(scope)
    method = grouped_method(scope["method"], scope.get("route"))
    return ErrorEvent(
        timestamp=time.time() - duration,
        duration_seconds=duration,
        method=method,
        sent_method=None if method == scope["method"] else scope["method"][:SENT_METHOD_CHARACTERS],
        scheme=scope.get("scheme", "http"),
        path=scope.get("path", ""),
        route=route_template(scope),
        query_string=(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        client=client_address(scope),
        request_id=request_id_of(scope, headers),
        status_code=status,
        request_body=_request_body(request_tee, headers),
        response_body=_response_body(response),
        exception=exception,
        trace_id=current_trace_id(headers),
    )


def request_headers(scope: Scope) -> Pairs:
    """The request's headers as text, names in lower case (an HTTP request's, or a websocket's)."""
    return tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in scope.get("headers") or ()
    )


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


def _header(headers: Any, wanted: bytes) -> str | None:
    for name, value in headers or ():
        if name.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _request_body(tee: RequestBodyTee | None, headers: tuple[tuple[str, str], ...]) -> CapturedBody:
    if tee is None or tee.body.size == 0:
        return NO_BODY
    content_type = next((value for name, value in headers if name == "content-type"), None)
    encoding = next((value for name, value in headers if name == "content-encoding"), None)
    return tee.body.freeze(content_type, encoding)


def _response_body(capture: ResponseCapture | None) -> CapturedBody:
    if capture is None or capture.body.size == 0:
        return NO_BODY
    return capture.body.freeze(capture.content_type, capture.content_encoding)
