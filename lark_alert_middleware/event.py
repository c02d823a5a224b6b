"""The captured error: an immutable record handed from the request to the alerter."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace

# Frames of a traceback shown on a card: the innermost ones, where the error was raised.
TRACEBACK_FRAMES = 12


@dataclass(frozen=True, slots=True)
class CapturedBody:
    """The first bytes of a request or response body, and how many bytes there were in all."""

    data: bytes = b""
    size: int = 0
    content_type: str | None = None
    content_encoding: str | None = None

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


NO_BODY = CapturedBody()


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


def exception_name(exception: BaseException | None) -> str:
    """`ValueError` for builtins, `package.module.Error` otherwise; empty without an exception."""
    if exception is None:
        return ""
    kind = type(exception)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclass(frozen=True, slots=True)
class ExceptionText:
    """An exception as a card shows it, unredacted, holding none of the exception's frames."""

    type_name: str
    message: str
    traceback: str

    @classmethod
    def of(cls, exception: BaseException) -> ExceptionText:
        try:
            message = str(exception)
        except Exception:
            message = "<str() of the exception failed>"
        try:
            formatted = traceback.TracebackException.from_exception(exception, limit=-TRACEBACK_FRAMES)
            trace = "".join(formatted.format()).rstrip("\n")
        except Exception:
            trace = ""
        return cls(exception_name(exception), message, trace)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One failing request as the middleware saw it. Raw: redaction happens before rendering."""

    timestamp: float
    duration_seconds: float
    method: str
    scheme: str
    path: str
    route: str | None
    query_string: str
    headers: tuple[tuple[str, str], ...]
    client: str | None
    request_id: str
    status_code: int
    request_body: CapturedBody
    response_body: CapturedBody
    exception: BaseException | None
    trace_id: str | None = None
    # The method as the client sent it (cut short), when `method` groups it as OTHER.
    sent_method: str | None = None
    # Set instead of `exception` once the event waits to be posted (see `without_frames`).
    exception_text: ExceptionText | None = None

    def without_frames(self) -> ErrorEvent:
        """This event with its exception as text: a traceback keeps every frame's locals alive
        (a request body read into memory, say) for as long as the alert waits for its turn."""
        if self.exception is None:
            return self
        return replace(self, exception=None, exception_text=ExceptionText.of(self.exception))

    @property
    def is_error(self) -> bool:
        """A server error or an exception (red, and first in line), rather than a client error (orange)."""
        return self.status_code >= 500 or self.exception is not None or self.exception_text is not None

    def header(self, name: str) -> str | None:
        """The first value of a request header, by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None
