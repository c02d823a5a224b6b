"""A minimal ASGI server in the test: records every message an app sends, can make the client leave.

For what httpx's and Starlette's test transports cannot express: they buffer whole responses and
never disconnect. A client that leaves is signalled the way servers do: `http.disconnect` from
`receive`, and then, on ASGI spec 2.3 (uvicorn), sends are dropped; on spec 2.4, sends raise OSError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from starlette.types import ASGIApp, Message

BodyHook = Callable[[bytes], None]


@dataclass
class Exchange:
    """What the app sent before and after the client left, and how the app call ended."""

    sent: list[Message] = field(default_factory=list)
    dropped: int = 0
    error: str | None = None

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.sent)

    def outline(self) -> list[tuple[str, int]]:
        """Message types and body sizes, in order."""
        return [(message["type"], len(message.get("body", b""))) for message in self.sent]


async def exchange(
    app: ASGIApp,
    path: str,
    *,
    leave_after_bodies: int | None = None,
    spec_version: str = "2.3",
    on_body: BodyHook | None = None,
    timeout: float = 10.0,
) -> Exchange:
    """GET `path`; the client leaves after `leave_after_bodies` non-empty body messages, if given."""
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver"), (b"accept-encoding", b"identity")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    result = Exchange()
    left = anyio.Event()
    request_sent = False
    bodies = 0

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal bodies
        if left.is_set():
            if spec_version >= "2.4":
                raise OSError("the client went away")
            result.dropped += 1
            return
        result.sent.append(message)
        chunk = message.get("body", b"")
        if chunk:
            bodies += 1
            if on_body is not None:
                on_body(chunk)
            if leave_after_bodies is not None and bodies >= leave_after_bodies:
                left.set()

    try:
        with anyio.fail_after(timeout):
            await app(scope, receive, send)
    except Exception as error:
        result.error = type(error).__name__
    return result
