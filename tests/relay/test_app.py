"""The relay's ASGI app in process: what it answers, what it refuses, what it posts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message

import lark_alert_middleware.relay as relay_module
from lark_alert_middleware import ConfigurationError
from lark_alert_middleware._sources.relay import forward
from lark_alert_middleware.relay import RefusingRelay, Relay, create_relay
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import client_for, keep_the_alerter_busy
from .conftest import GRAFANA_SECRET, TOKEN, alertmanager_group, payload
from .test_payloads import signed

pytestmark = pytest.mark.anyio
AUTHORISED = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def relay(lark_receiver: LarkReceiver) -> Iterator[Relay]:
    """A relay posting to the receiver; what it took is posted before the receiver stops."""
    relay = create_relay(
        relay_token=TOKEN, webhook_url=lark_receiver.url, relay_grafana_secret=GRAFANA_SECRET
    )
    yield relay
    assert relay.flush(10)


async def post(app: Any, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with client_for(app) as client:
        return await client.post(path, content=content, headers=AUTHORISED if headers is None else headers)


def test_a_relay_without_a_token_does_not_start_and_says_how_to_make_one() -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_relay()
    assert "LARK_RELAY_TOKEN is not set" in str(refused.value)
    assert "openssl rand -hex 16" in str(refused.value)


def test_a_short_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_relay(relay_token="short-secret")
    assert "LARK_RELAY_TOKEN (relay_token=): must be 16 to 512 printable ASCII" in str(refused.value)
    assert "short-secret" not in str(refused.value)


@pytest.fixture
def fresh_module_app() -> Iterator[None]:
    """`relay.app` built anew on first use in the test, and forgotten after it."""
    relay_module.__dict__.pop("app", None)
    yield
    relay_module.__dict__.pop("app", None)


@pytest.mark.usefixtures("fresh_module_app")
async def test_the_module_app_without_a_token_fails_start_up_and_every_request() -> None:
    app = relay_module.app
    assert isinstance(app, RefusingRelay)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "LARK_RELAY_TOKEN is not set" in sent[0]["message"]
    answer = await post(app, "/alertmanager", b"{}")
    assert answer.status_code == 503 and "LARK_RELAY_TOKEN" in answer.json()["error"]


async def test_unknown_paths_and_methods_are_refused_and_healthz_is_open(relay: Relay) -> None:
    async with client_for(relay) as client:
        assert (await client.post("/prometheus", headers=AUTHORISED)).status_code == 404
        wrong_method = await client.get("/alertmanager", headers=AUTHORISED)
        assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.post("/healthz")).status_code == 405
        trailing_slash = await client.post("/alertmanager/", content=b"{", headers=AUTHORISED)
        assert trailing_slash.status_code == 400


async def test_a_body_of_one_mebibyte_is_read_and_one_byte_more_is_413(relay: Relay) -> None:
    document = json.dumps(alertmanager_group("Exactly", ("firing",))).encode()
    padded = document + b" " * (1024 * 1024 - len(document))
    assert (await post(relay, "/alertmanager", padded)).status_code == 202
    assert (await post(relay, "/alertmanager", padded + b" ")).status_code == 413


async def test_a_body_streamed_past_the_bound_is_413_and_not_kept(relay: Relay) -> None:
    received: list[int] = []

    async def chunks() -> Any:
        for _ in range(40):
            received.append(1)
            yield b" " * 65536

    async with client_for(relay) as client:
        answer = await client.post("/alertmanager", content=chunks(), headers=AUTHORISED)
    assert answer.status_code == 413


async def test_a_large_body_announced_with_expect_100_continue_is_refused_unread(relay: Relay) -> None:
    answers: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/alertmanager",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-length", b"5000000"),
            (b"expect", b"100-continue"),
        ],
    }
    await relay(scope, receive, send)
    assert answers[0]["status"] == 413


async def test_a_client_gone_before_its_body_gets_no_answer(relay: Relay) -> None:
    answers: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/seq",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
    }
    await relay(scope, receive, send)
    assert answers == []


async def test_with_a_grafana_secret_only_signed_grafana_posts_are_taken(relay: Relay) -> None:
    content = json.dumps(payload("grafana")).encode()
    unsigned = await post(relay, "/grafana", content)
    assert unsigned.status_code == 401 and "X-Grafana-Alerting-Signature" in unsigned.json()["error"]
    signature = signed(GRAFANA_SECRET, content).decode()
    headers = {**AUTHORISED, "X-Grafana-Alerting-Signature": signature}
    assert (await post(relay, "/grafana", content, headers)).status_code == 202
    # The other endpoints are not Grafana's: no signature asked.
    assert (await post(relay, "/generic", json.dumps(payload("generic")).encode())).status_code == 202


async def test_with_send_resolved_off_a_resolved_alert_makes_no_card(lark_receiver: LarkReceiver) -> None:
    relay = create_relay(relay_token=TOKEN, webhook_url=lark_receiver.url, relay_send_resolved=False)
    firing = alertmanager_group("QuietResolve", ("firing", "firing"))
    assert (await post(relay, "/alertmanager", json.dumps(firing).encode())).status_code == 202
    assert relay.flush(10)
    resolved = alertmanager_group("QuietResolve", ("resolved", "firing"))
    assert (await post(relay, "/alertmanager", json.dumps(resolved).encode())).status_code == 202
    assert relay.flush(10)
    assert len(lark_receiver.cards) == 2
    assert relay.pipeline.stats().raised == 2


def test_the_relay_template_replaces_the_card_template() -> None:
    template = EXAMPLES / "compact_card.json.j2"
    relay = create_relay(relay_token=TOKEN, relay_template=str(template))
    assert relay.settings.template == template


async def test_a_storm_of_five_thousand_alerts_becomes_cards_and_digests_and_nothing_is_lost(
    lark_receiver: LarkReceiver,
) -> None:
    relay = create_relay(relay_token=TOKEN, webhook_url=lark_receiver.url, queue_size=2)
    async with client_for(relay) as client:
        for batch in range(50):
            document = alertmanager_group(f"Storm{batch}", ("firing",) * 100)
            answer = await client.post(
                "/alertmanager", content=json.dumps(document).encode(), headers=AUTHORISED
            )
            assert answer.json() == {"accepted": 100}
    assert relay.flush(30)
    stats = relay.pipeline.stats()
    assert stats.raised == 5000 and stats.dropped == 0 and stats.failed == 0
    titles = [str(card["header"]["title"]["content"]) for card in lark_receiver.cards]
    digested = [int(title.split()[1]) for title in titles if " more errors since " in title]
    assert (
        digested and len(titles) - len(digested) + sum(digested) == 5000
    )  # every alert, on a card or a digest


async def test_a_disabled_relay_takes_alerts_and_cards_none(lark_receiver: LarkReceiver) -> None:
    relay = create_relay(relay_token=TOKEN, webhook_url=lark_receiver.url, enabled=False)
    document = json.dumps(alertmanager_group("Disabled", ("firing",))).encode()
    assert (await post(relay, "/alertmanager", document)).status_code == 202
    assert relay.flush(10)
    assert relay.pipeline.stats().raised == 0 and lark_receiver.cards == []


async def test_while_the_alerter_is_far_behind_alerts_skip_the_state_check_not_the_pipeline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = create_relay(relay_token=TOKEN)
    first = json.dumps(alertmanager_group("Behind1", ("firing",))).encode()
    monkeypatch.setattr(forward, "MAX_WAITING_BYTES", len(first))
    release = keep_the_alerter_busy()
    try:
        assert (await post(relay, "/alertmanager", first)).status_code == 202  # waits for the loop
        second = json.dumps(alertmanager_group("Behind2", ("firing",))).encode()
        assert (await post(relay, "/alertmanager", second)).status_code == 202  # no room: straight on
        assert relay.pipeline.stats().raised == 1
    finally:
        release.set()
    assert relay.flush(10)
    assert relay.pipeline.stats().raised == 2


async def test_a_notification_holding_nothing_new_is_answered_without_waking_the_alerter() -> None:
    relay = create_relay(relay_token=TOKEN)
    group = json.dumps(alertmanager_group("NothingNew", ("firing",))).encode()
    assert (await post(relay, "/alertmanager", group)).status_code == 202
    assert relay.flush(10)
    release = keep_the_alerter_busy()
    try:
        assert (await post(relay, "/alertmanager", group)).status_code == 202
        assert relay.forwarder.flush(0)  # nothing was handed off: the process knew every alert
        resolved = json.dumps(alertmanager_group("NothingNew", ("resolved",))).encode()
        assert (await post(relay, "/alertmanager", resolved)).status_code == 202
        assert not relay.forwarder.flush(0)  # a change: handed off, waiting for the alerter
    finally:
        release.set()
    assert relay.flush(10)
