"""A Lark-compatible custom-bot webhook on loopback, for tests (ours and yours).

`LarkReceiver` is a real HTTP server, in a thread, that answers like Lark's webhook: it
checks the token in the URL, the 20 KiB body limit, the signature and its one-hour
timestamp window, the keyword, the 5/s and 100/min rate limits, and answers with Lark's
codes (HTTP 200 and a non-zero `code` for refusals). It records every request and the
cards it accepted. Faults can be scripted: HTTP 500, HTTP 429, frequency limited, a hang,
or a dropped connection; `hold()` keeps requests unanswered until `release()`.

    with LarkReceiver(secret="s3cret") as lark:
        app.add_middleware(LarkAlertMiddleware, webhook_url=lark.url, webhook_secret="s3cret")
        ...
        [card] = lark.wait_for_cards(1)

With pytest, the fixtures `lark_receiver` and `make_lark_receiver` are available once
the package is installed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from ._lark.webhook import (
    BAD_REQUEST,
    FREQUENCY_LIMITED,
    IP_NOT_ALLOWED,
    KEYWORD_MISSING,
    MSG_TYPE_INVALID,
    SIGNATURE_FAILED,
    TOKEN_INVALID,
    TOO_LARGE,
    sign,
)

Fault = Literal["http_500", "http_429", "frequency_limited", "hang", "drop"]

HOOK_PATH = "/open-apis/bot/v2/hook/"
MESSAGE_TYPES = frozenset({"text", "post", "image", "share_chat", "interactive"})
SUCCESS = {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}
REFUSALS = {
    TOKEN_INVALID: "param invalid: incoming webhook access token invalid",
    TOO_LARGE: "The message exceeds the size limit",
    BAD_REQUEST: "Bad Request",
    SIGNATURE_FAILED: "sign match fail or timestamp is not within one hour from current time",
    IP_NOT_ALLOWED: "Ip Not Allowed",
    KEYWORD_MISSING: "Key Words Not Found",
    MSG_TYPE_INVALID: "param invalid: msg_type",
    FREQUENCY_LIMITED: "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]",
}


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the receiver saw it, and what it answered (`answer_code` None: no answer)."""

    received_at: float
    path: str
    body: bytes
    message: dict[str, Any] | None
    http_status: int | None
    answer_code: int | None

    @property
    def accepted(self) -> bool:
        return self.answer_code == 0


class LarkReceiver:
    """A webhook that behaves like Lark's, on 127.0.0.1 and a free port unless `host`/`port` say otherwise."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        token: str = "test-token",
        per_second: int = 5,
        per_minute: int = 100,
        max_body_bytes: int = 20 * 1024,
        allowed_ips: Iterable[str] | None = None,
        delay: float = 0.0,
        hang_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.secret = secret
        self.keyword = keyword
        self.token = token
        self.per_second = per_second
        self.per_minute = per_minute
        self.max_body_bytes = max_body_bytes
        self.allowed_ips = frozenset(allowed_ips) if allowed_ips is not None else None
        self.delay = delay
        self.hang_seconds = hang_seconds
        self._clock = clock
        self._lock = threading.Condition()
        self._faults: deque[Fault] = deque()
        self._accepted_at: deque[float] = deque()
        self._requests: list[ReceivedRequest] = []
        self._in_flight = 0
        self._stopping = threading.Event()
        self._answering = threading.Event()
        self._answering.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LarkReceiver:
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.requested_port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="lark-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._answering.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LarkReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the receiver first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The webhook URL to configure (`LARK_WEBHOOK_URL`) on this machine."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}{HOOK_PATH}{self.token}"

    # -- scripting ---------------------------------------------------------------------------
    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order, before answering normally again."""
        with self._lock:
            self._faults.extend(faults)

    def hold(self) -> None:
        """Keep every request from now on unanswered until `release()` (or `stop()`)."""
        self._answering.clear()

    def release(self) -> None:
        """Answer the requests held since `hold()`, and those that come after, as usual."""
        self._answering.set()

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._accepted_at.clear()

    # -- what was received -------------------------------------------------------------------
    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """Requests received but not yet answered (held by `delay`, a hang, or in progress)."""
        with self._lock:
            return self._in_flight

    def wait_for_in_flight(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least `count` requests are being held unanswered."""
        self._wait(lambda: self._in_flight >= count, timeout, f"{count} requests in flight")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first."""
        return [r.message for r in self.requests if r.accepted and r.message is not None]

    @property
    def cards(self) -> list[dict[str, Any]]:
        """The `card` of each accepted interactive message, oldest first."""
        return [m["card"] for m in self.messages if m.get("msg_type") == "interactive"]

    def wait_for_cards(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least `count` cards were accepted; AssertionError after `timeout` seconds."""
        self._wait(lambda: len(self.cards) >= count, timeout, f"{count} accepted cards")
        return self.cards

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests were answered (or dropped)."""
        self._wait(lambda: len(self._requests) >= count, timeout, f"{count} requests")
        return self.requests

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        with self._lock:
            if not self._lock.wait_for(ready, timeout):
                answers = [(r.http_status, r.answer_code) for r in self._requests]
                raise AssertionError(f"expected {what} within {timeout}s; got answers {answers}")

    # -- answering (server threads) ----------------------------------------------------------
    def _started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._lock.notify_all()

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests.append(request)
            self._lock.notify_all()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _answer(
        self, path: str, body: bytes, client_ip: str
    ) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
        """Lark's checks, in order; returns HTTP status, answer, parsed message."""
        if not path.startswith(HOOK_PATH) or path[len(HOOK_PATH) :] != self.token:
            return 200, _refusal(TOKEN_INVALID), None
        if len(body) > self.max_body_bytes:
            return 200, _refusal(TOO_LARGE), None
        try:
            message = json.loads(body)
        except ValueError:
            return 400, _refusal(BAD_REQUEST), None
        if not isinstance(message, dict):
            return 400, _refusal(BAD_REQUEST), None
        if self.secret is not None and not self._signed(message):
            return 200, _refusal(SIGNATURE_FAILED), message
        if self.allowed_ips is not None and client_ip not in self.allowed_ips:
            return 200, _refusal(IP_NOT_ALLOWED), message
        if message.get("msg_type") not in MESSAGE_TYPES:
            return 200, _refusal(MSG_TYPE_INVALID), message
        if message.get("msg_type") == "interactive" and not isinstance(message.get("card"), dict):
            return 400, _refusal(BAD_REQUEST), message
        if self.keyword is not None and self.keyword not in _all_text(message.get("card") or message):
            return 200, _refusal(KEYWORD_MISSING), message
        if not self._within_rate_limits():
            return 200, _refusal(FREQUENCY_LIMITED), message
        return 200, dict(SUCCESS), message

    def _signed(self, message: dict[str, Any]) -> bool:
        assert self.secret is not None
        timestamp, signature = message.get("timestamp"), message.get("sign")
        if not isinstance(timestamp, str) or not isinstance(signature, str) or not timestamp.isdigit():
            return False
        if abs(self._clock() - int(timestamp)) > 3600:
            return False
        return hmac.compare_digest(signature, sign(self.secret, int(timestamp)))

    def _within_rate_limits(self) -> bool:
        now = self._clock()
        with self._lock:
            accepted = self._accepted_at
            while accepted and accepted[0] <= now - 60:
                accepted.popleft()
            last_second = sum(1 for moment in accepted if moment > now - 1)
            if last_second >= self.per_second or len(accepted) >= self.per_minute:
                return False
            accepted.append(now)
            return True


def _refusal(code: int) -> dict[str, Any]:
    return {"code": code, "msg": REFUSALS[code], "data": {}}


def _all_text(node: Any) -> str:
    if isinstance(node, dict):
        return "\n".join(_all_text(value) for value in node.values())
    if isinstance(node, list):
        return "\n".join(_all_text(item) for item in node)
    return node if isinstance(node, str) else ""


def _handler_for(receiver: LarkReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            received_at = receiver._clock()
            receiver._started()
            receiver._answering.wait()
            fault = receiver._next_fault()
            if fault is not None:
                self._fault(fault, received_at, body)
                return
            if receiver.delay:
                receiver._stopping.wait(receiver.delay)
            status, answer, message = receiver._answer(self.path, body, self.client_address[0])
            receiver._record(ReceivedRequest(received_at, self.path, body, message, status, answer["code"]))
            self._reply(status, answer)

        def _fault(self, fault: Fault, received_at: float, body: bytes) -> None:
            if fault == "http_500":
                status, answer_code = 500, None
                self._reply(500, None)
            elif fault == "http_429":
                status, answer_code = 429, None
                self._reply(429, None, {"Retry-After": "1"})
            elif fault == "frequency_limited":
                status, answer_code = 200, FREQUENCY_LIMITED
                self._reply(200, _refusal(FREQUENCY_LIMITED))
            else:
                if fault == "hang":
                    receiver._stopping.wait(receiver.hang_seconds)
                status, answer_code = None, None
                self.close_connection = True
            receiver._record(ReceivedRequest(received_at, self.path, body, None, status, answer_code))

        def _reply(
            self, status: int, answer: dict[str, Any] | None, headers: dict[str, str] | None = None
        ) -> None:
            payload = json.dumps(answer).encode() if answer is not None else b"upstream error"
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if answer is not None else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may have given up
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
