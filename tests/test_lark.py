"""The webhook client: signing, reading Lark's answers, and keeping the token out of logs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lark_alert_middleware._lark.webhook import (
    LarkWebhook,
    Outcome,
    message_body,
    read_answer,
    redact_url,
    sign,
)
from lark_alert_middleware.testing import LarkReceiver

pytestmark = pytest.mark.anyio


def test_signature_is_hmac_sha256_keyed_by_timestamp_and_secret_over_nothing() -> None:
    expected = base64.b64encode(hmac.new(b"1700000000\nabc", b"", hashlib.sha256).digest()).decode()
    assert sign("abc", 1700000000) == expected


def test_signed_body_carries_timestamp_as_a_string_and_the_card() -> None:
    body = json.loads(message_body('{"elements":[]}', "abc", 1700000000))
    assert body == {
        "timestamp": "1700000000",
        "sign": sign("abc", 1700000000),
        "msg_type": "interactive",
        "card": {"elements": []},
    }


def test_unsigned_body_has_no_signature_fields() -> None:
    assert json.loads(message_body("{}", None, 1)) == {"msg_type": "interactive", "card": {}}


@pytest.mark.parametrize(
    ("status", "body", "outcome", "code"),
    [
        (200, b'{"code":0,"msg":"success","data":{}}', Outcome.DELIVERED, 0),
        (200, b'{"StatusCode":0,"StatusMessage":"success","Extra":null}', Outcome.DELIVERED, 0),
        (200, b'{"code":11232,"msg":"frequency limited"}', Outcome.RETRY, 11232),
        (200, b'{"code":19021,"msg":"sign match fail"}', Outcome.REJECTED, 19021),
        (200, b'{"code":19024,"msg":"Key Words Not Found"}', Outcome.REJECTED, 19024),
        (400, b'{"code":9499,"msg":"Bad Request"}', Outcome.REJECTED, 9499),
        (429, b"", Outcome.RETRY, None),
        (502, b"<html>bad gateway</html>", Outcome.RETRY, None),
        (200, b"<html>captive portal</html>", Outcome.REJECTED, None),
    ],
)
def test_answers_are_classified_by_body_not_only_status(
    status: int, body: bytes, outcome: Outcome, code: int | None
) -> None:
    answer = read_answer(status, body)
    assert answer.outcome is outcome
    assert answer.code == code


def test_refusals_are_described_with_the_fix() -> None:
    described = read_answer(200, b'{"code":19021,"msg":"sign match fail"}').describe()
    assert "LARK_WEBHOOK_SECRET" in described and "clock" in described
    assert "LARK_ALERT_KEYWORD" in read_answer(200, b'{"code":19024,"msg":"x"}').describe()


def test_retry_after_is_read_in_seconds() -> None:
    assert read_answer(429, b"", "3").retry_after == 3.0


def test_redacted_url_keeps_host_and_path_but_not_the_token() -> None:
    url = "https://open.larksuite.com/open-apis/bot/v2/hook/0123-secret-token"
    assert redact_url(url) == "https://open.larksuite.com/open-apis/bot/v2/hook/***"
    assert (
        redact_url("http://127.0.0.1:8123/open-apis/bot/v2/hook/t")
        == "http://127.0.0.1:8123/open-apis/bot/v2/hook/***"
    )


async def test_a_signed_post_is_accepted_by_the_receiver() -> None:
    with LarkReceiver(secret="s3cret") as lark:
        webhook = LarkWebhook(lark.url, "s3cret")
        async with httpx.AsyncClient() as client:
            answer = await webhook.post(client, '{"elements":[]}')
    assert answer.outcome is Outcome.DELIVERED
    assert lark.cards == [{"elements": []}]


async def test_a_wrong_secret_is_refused_with_sign_error() -> None:
    with LarkReceiver(secret="right") as lark:
        async with httpx.AsyncClient() as client:
            answer = await LarkWebhook(lark.url, "wrong").post(client, '{"elements":[]}')
    assert (answer.outcome, answer.code) == (Outcome.REJECTED, 19021)


async def test_an_unreachable_webhook_is_a_retryable_network_error_without_the_token() -> None:
    webhook = LarkWebhook("http://127.0.0.1:9/open-apis/bot/v2/hook/tok-abc-123", None)
    async with httpx.AsyncClient() as client:
        answer = await webhook.post(client, "{}")
    assert answer.outcome is Outcome.RETRY
    assert "tok-abc-123" not in answer.describe()


async def test_the_token_never_reaches_the_httpx_log(caplog: pytest.LogCaptureFixture) -> None:
    with LarkReceiver(token="tok-hidden-42") as lark, caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient() as client:
            await LarkWebhook(lark.url, None).post(client, '{"elements":[]}')
    assert any("HTTP Request: POST" in record.getMessage() for record in caplog.records)
    assert not any("tok-hidden-42" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("query", ["token=q-secret-1", "key=q-secret-1", "code=q-secret-1&team=ops"])
async def test_a_relay_token_in_the_query_never_reaches_the_httpx_log(
    query: str, caplog: pytest.LogCaptureFixture
) -> None:
    with LarkReceiver(token="tok-hidden-42") as lark, caplog.at_level(logging.INFO, logger="httpx"):
        port = lark.port
        webhook = LarkWebhook(f"http://ops:pw-secret-2@127.0.0.1:{port}/hook?{query}", None)
        async with httpx.AsyncClient() as client:
            await webhook.post(client, "{}")  # refused (wrong path): the log line is what counts
    [line] = [record.getMessage() for record in caplog.records if "HTTP Request: POST" in record.getMessage()]
    assert f"POST http://ops:***@127.0.0.1:{port}/***?" in line
    assert "q-secret-1" not in line and "pw-secret-2" not in line


class HugeAnswer:
    """A webhook host on loopback that answers every post with `body`, sent as long as the client reads."""

    def __init__(self, body: Iterator[bytes], length: int, headers: dict[str, str]) -> None:
        self.bytes_written = 0
        self.finished = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                for name, value in {**headers, "Content-Length": str(length)}.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for chunk in body:
                        self.wfile.write(chunk)
                        owner.bytes_written += len(chunk)
                except OSError:  # the client closed the connection
                    self.close_connection = True
                finally:
                    owner.finished.set()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/open-apis/bot/v2/hook/tok"

    def __enter__(self) -> HugeAnswer:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


BIG = 64 * 1024 * 1024


def success_padded_to(size: int) -> Iterator[bytes]:
    """Lark's success answer, its message padded to `size` bytes in all: valid JSON only when read whole."""
    head, tail = b'{"code":0,"msg":"', b'"}'
    yield head
    padding = size - len(head) - len(tail)
    for _ in range(padding // 65536):
        yield b"x" * 65536
    yield b"x" * (padding % 65536) + tail


async def test_a_huge_answer_is_read_only_up_to_the_limit_and_then_hung_up_on() -> None:
    with HugeAnswer(success_padded_to(BIG), BIG, {"Content-Type": "application/json"}) as host:
        async with httpx.AsyncClient() as client:
            answer = await LarkWebhook(host.url, None).post(client, "{}")
        assert host.finished.wait(30), "the host was still sending"
    # What the host got to send is bounded by the sockets' buffers, not by the answer's size.
    assert host.bytes_written < BIG // 2
    assert (answer.outcome, answer.message) == (Outcome.REJECTED, "unexpected answer (not Lark's JSON)")


async def test_a_compressed_answer_is_never_inflated() -> None:
    inflated = b'{"code":0,"msg":"' + b" " * BIG + b'"}'
    compressed = gzip.compress(inflated, compresslevel=9)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with HugeAnswer(iter([compressed]), len(compressed), headers) as host:
        async with httpx.AsyncClient() as client:
            webhook = LarkWebhook(host.url, None)
            tracemalloc.start()
            try:
                answer = await webhook.post(client, "{}")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # 64 MiB, had it been inflated
    assert (answer.outcome, answer.message) == (Outcome.REJECTED, "unexpected answer (not Lark's JSON)")


def trickle() -> Iterator[bytes]:
    """An answer sent a byte at a time, each well within httpx's read timeout, never finishing."""
    yield b'{"code":0,'
    for _ in range(600):
        time.sleep(0.05)
        yield b" "


async def test_a_host_trickling_its_answer_holds_a_post_no_longer_than_twice_the_post_timeout() -> None:
    with HugeAnswer(trickle(), 1000, {"Content-Type": "application/json"}) as host:
        async with httpx.AsyncClient() as client:
            answer = await LarkWebhook(host.url, None, timeout=0.5).post(client, "{}")
        assert host.finished.wait(30)
    assert answer.outcome is Outcome.RETRY and "no whole answer within 1s" in answer.message
    assert host.bytes_written < 1000  # hung up on long before the host was done
