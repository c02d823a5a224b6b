"""The webhook client: signing, reading Lark's answers, and keeping the token out of logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import httpx
import pytest

from lark_alert_middleware.lark import (
    LarkWebhook,
    Outcome,
    message_body,
    read_answer,
    redact_url,
    sign,
)
from lark_alert_middleware.testing import LarkReceiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
