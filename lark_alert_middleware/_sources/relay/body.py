"""Reading a request body with a bound, and answering in JSON: the relay's HTTP plumbing."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Send

MAX_BODY_BYTES = 1024 * 1024
# What is read and dropped of a body too large before the 413 goes out: a client still
# sending would otherwise find the connection reset and never read the answer.
DRAIN_BYTES = 16 * MAX_BODY_BYTES


class BodyTooLarge(Exception):
    """More than MAX_BODY_BYTES: answered with 413."""


class ClientGone(Exception):
    """The client disconnected before its body was read: nothing to answer."""


async def read_body(receive: Receive, declared_length: int | None, expects_continue: bool) -> bytes:
    """The body, at most MAX_BODY_BYTES of it; BodyTooLarge past that (nothing more is kept)."""
    if declared_length is not None and declared_length > MAX_BODY_BYTES:
        if not expects_continue:  # the client waits for a 100 Continue we will not send
            await _drain(receive, 0)
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if message.get("more_body", False):
                await _drain(receive, size)
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Receive, already: int) -> None:
    drained = already
    while drained < DRAIN_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def answer(
    send: Send, status: int, document: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """A JSON answer (ASCII only: what it quotes of a request cannot garble a log or a terminal)."""
    body = json.dumps(document, ensure_ascii=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
