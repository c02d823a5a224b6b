"""Websocket connections: an exception escaping the endpoint alerts; the connection is left as it is.

Closes are not failures: whatever code the app closes with, and a client that goes away (which
Starlette raises as `WebSocketDisconnect`). Each message costs a type check and a counter
increment; the card says how long the connection lived and how many messages it carried.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter

from starlette.exceptions import WebSocketException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from .._pipeline.fingerprint import websocket_fingerprint
from .._records import WEBSOCKET, ErrorEvent, Pairs, exception_name
from .context import request_id_of
from .http import client_address, request_headers
from .routes import route_template
from .tracing import current_trace_id

# The connection ended, or the app closed it with a code: not an error.
NORMAL_CLOSES: tuple[type[Exception], ...] = (WebSocketDisconnect, WebSocketException, ClientDisconnect)
try:  # Starlette 1.0+: a websocket used after it closed
    from starlette.websockets import WebSocketDisconnected  # type: ignore[attr-defined,unused-ignore]

    NORMAL_CLOSES += (WebSocketDisconnected,)
except ImportError:  # pragma: no cover - older Starlette raises RuntimeError there
    pass

# What a websocket's card shows as its method.
WEBSOCKET_METHOD = "WEBSOCKET"
# How much of a path a subject keeps, for a connection that matched no route: the client chose it.
SUBJECT_PATH_CHARACTERS = 200


@dataclass(frozen=True, slots=True)
class Session:
    """What a connection did before its endpoint raised."""

    seconds: float
    received: int  # data messages from the client
    sent: int  # data messages to the client
    accepted: bool

    def details(self) -> Pairs:
        lived = spoken_duration(self.seconds)
        messages = ("Messages", f"{self.received} received, {self.sent} sent")
        if self.accepted:
            return (("Connected for", lived), messages)
        return (("Handshake", f"failed after {lived}, before the connection was accepted"), messages)


FailureHook = Callable[[Scope, Exception, Session], None]


async def observe_websocket(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, failed: FailureHook
) -> None:
    """Run the app's websocket session; an exception other than a close goes to `failed`, then on."""
    started = perf_counter()
    received = sent = 0
    accepted = False

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "websocket.receive":
            received += 1
        return message

    def counting_send(message: Message) -> Awaitable[None]:
        nonlocal sent, accepted
        if message["type"] == "websocket.send":
            sent += 1
        elif message["type"] == "websocket.accept":
            accepted = True
        return send(message)

    try:
        await app(scope, counting_receive, counting_send)
    except NORMAL_CLOSES:
        raise
    except Exception as exception:
        failed(scope, exception, Session(perf_counter() - started, received, sent, accepted))
        raise


def websocket_event(scope: Scope, exception: Exception, session: Session) -> ErrorEvent:
    """The event of a websocket whose endpoint raised: the connection's request, and what it did."""
    headers = request_headers(scope)
    route = route_template(scope)
    path: str = scope.get("path", "")
    return ErrorEvent(
        timestamp=time.time() - session.seconds,
        duration_seconds=session.seconds,
        method=WEBSOCKET_METHOD,
        scheme=scope.get("scheme", "ws"),
        path=path,
        route=route,
        query_string=(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        client=client_address(scope),
        request_id=request_id_of(scope, headers),
        exception=exception,
        trace_id=current_trace_id(headers),
        source=WEBSOCKET,
        subject=f"{exception_name(exception)} in websocket {route or path[:SUBJECT_PATH_CHARACTERS]}",
        fingerprint=websocket_fingerprint(route, exception),
        details=session.details(),
    )


def spoken_duration(seconds: float) -> str:
    """`0.4 s`, `12 min 34 s`, `3 h 5 min`, `2 d 4 h`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, remainder = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {remainder} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
