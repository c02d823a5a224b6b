"""The Lark custom-bot webhook: signing, posting, and reading Lark's answer.

Lark answers most failures with HTTP 200 and a non-zero `code`, so a post counts as
delivered only when the body says `code: 0` (or the older `StatusCode: 0`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from json import dumps as json_dumps
from json import loads as json_loads
from typing import cast

import httpx

from .urls import safe_url

# The hosts of custom-bot webhooks: Lark, Feishu, and Feishu's newer domain.
LARK_HOSTS = ("open.larksuite.com", "open.feishu.cn", "open.larkoffice.com")

FREQUENCY_LIMITED = 11232
SIGNATURE_FAILED = 19021
IP_NOT_ALLOWED = 19022
KEYWORD_MISSING = 19024
TOKEN_INVALID = 19001
MSG_TYPE_INVALID = 19002
TOO_LARGE = 19036
BAD_REQUEST = 9499

# What to do about each refusal, in words an operator can act on.
ADVICE = {
    SIGNATURE_FAILED: "signature rejected: LARK_WEBHOOK_SECRET must be the bot's signing secret, "
    "and this machine's clock must be within an hour of real time",
    IP_NOT_ALLOWED: "this server's IP address is not in the bot's IP allowlist; "
    "add it in the bot's security settings",
    KEYWORD_MISSING: "the bot requires a keyword; set LARK_ALERT_KEYWORD to one of the bot's custom keywords",
    TOKEN_INVALID: "the webhook token is invalid; check LARK_WEBHOOK_URL (the bot may have been removed)",
    MSG_TYPE_INVALID: "Lark refused the message type",
    TOO_LARGE: "the message was larger than Lark accepts",
    BAD_REQUEST: "Lark could not read the message (malformed card or body)",
    FREQUENCY_LIMITED: "Lark's rate limit for this bot was hit (100/min, 5/s)",
}


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class LarkAnswer:
    """What came back from one post, classified."""

    outcome: Outcome
    message: str
    code: int | None = None
    http_status: int | None = None
    retry_after: float | None = None

    def describe(self) -> str:
        """Lark's answer in words, with the fix when there is a known one."""
        parts = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        head = ", ".join(parts)
        advice = ADVICE.get(self.code) if self.code is not None else None
        text = f"{self.message} ({head})" if head else self.message
        return f"{text}: {advice}" if advice else text


def sign(secret: str, timestamp: int) -> str:
    """Lark's signature: HMAC-SHA256 keyed by "timestamp\\nsecret" over an empty message, base64."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def message_body(card_json: str, secret: str | None, timestamp: int) -> bytes:
    """The posted JSON: the card under `card`, with `timestamp` and `sign` when a secret is set."""
    head = ""
    if secret:
        head = f'"timestamp":"{timestamp}","sign":{json_dumps(sign(secret, timestamp))},'
    return f'{{{head}"msg_type":"interactive","card":{card_json}}}'.encode()


def redact_url(url: str) -> str:
    """The webhook URL without its token (in the path or, for a relay, the query), safe for logs."""
    return safe_url(url, webhook=True)


def read_answer(status: int, body: bytes, retry_after_header: str | None = None) -> LarkAnswer:
    retry_after = _retry_after(retry_after_header)
    try:
        payload = json_loads(body) if body else None
    except ValueError:
        payload = None
    code, message = _code_and_message(payload)
    if status == 429:
        return LarkAnswer(Outcome.RETRY, message or "too many requests", code, status, retry_after)
    if status >= 500:
        return LarkAnswer(Outcome.RETRY, message or "server error", code, status, retry_after)
    if code == 0 and 200 <= status < 300:
        return LarkAnswer(Outcome.DELIVERED, message or "success", 0, status)
    if code == FREQUENCY_LIMITED:
        return LarkAnswer(Outcome.RETRY, message or "frequency limited", code, status, retry_after)
    if code is None:
        return LarkAnswer(Outcome.REJECTED, "unexpected answer (not Lark's JSON)", None, status)
    return LarkAnswer(Outcome.REJECTED, message or "refused", code, status)


def _code_and_message(payload: object) -> tuple[int | None, str]:
    if not isinstance(payload, dict):
        return None, ""
    for code_key, message_key in (("code", "msg"), ("StatusCode", "StatusMessage")):
        code = payload.get(code_key)
        if isinstance(code, int) and not isinstance(code, bool):
            return code, str(payload.get(message_key) or "")[:300]
    return None, ""


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(header).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request URL at INFO; a webhook's URL is its credential, wherever the token sits."""

    def __init__(self) -> None:
        super().__init__()
        self.safe_forms: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(self._hide(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True

    def _hide(self, url: httpx.URL) -> object:
        return self.safe_forms.get(str(url), url)


_hide_webhook_urls = _HideWebhookUrls()
logging.getLogger("httpx").addFilter(_hide_webhook_urls)


JSON_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    # Answers are read raw and never decompressed: a small gzip body can inflate to gigabytes.
    "Accept-Encoding": "identity",
}
# Lark's answers are a few hundred bytes of JSON; a longer one is cut here and reads as unexpected.
ANSWER_LIMIT_BYTES = 4096


class LarkWebhook:
    """Posts cards to one custom-bot webhook; never raises, always returns a LarkAnswer."""

    def __init__(self, url: str, secret: str | None, timeout: float = 10.0) -> None:
        # Parsed once: httpx parses a string URL on every request, a third of a post's CPU time.
        self._url = httpx.URL(url)
        self._secret = secret
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        # httpx's timeouts bound each read; a host trickling its answer must not hold a post for longer.
        self._deadline_seconds = 2 * timeout
        self.safe_url = redact_url(url)
        _hide_webhook_urls.safe_forms[str(self._url)] = self.safe_url

    async def post(self, client: httpx.AsyncClient, card_json: str) -> LarkAnswer:
        body = message_body(card_json, self._secret, int(time.time()))
        try:
            return await asyncio.wait_for(self._post(client, body), self._deadline_seconds)
        except asyncio.TimeoutError:
            within = f"{self._deadline_seconds:g}s"
            return LarkAnswer(Outcome.RETRY, f"timed out (no whole answer within {within})")

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> LarkAnswer:
        try:
            async with client.stream(
                "POST", self._url, content=body, headers=JSON_HEADERS, timeout=self._timeout
            ) as response:
                answer = await _read_at_most(response, ANSWER_LIMIT_BYTES)
        except httpx.TimeoutException as error:
            return LarkAnswer(Outcome.RETRY, f"timed out ({type(error).__name__})")
        except httpx.HTTPError as error:
            # httpx messages can quote the URL, and the URL holds the token.
            return LarkAnswer(Outcome.RETRY, f"network error ({type(error).__name__})")
        return read_answer(response.status_code, answer, response.headers.get("retry-after"))


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of the body; leaving the stream unread closes the connection."""
    answer = b""
    # aiter_raw is an async generator: close it here, not whenever the garbage collector runs.
    chunks = cast("AsyncGenerator[bytes, None]", response.aiter_raw())
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            answer += chunk[: limit - len(answer)]
            if len(answer) >= limit:
                break
    return answer
