"""Whatever a client posts, a parser answers with alerts or a PayloadError, and every alert it
accepts makes a card that is postable (within 20 KiB) and pings nobody."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.view import CardSettings
from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware._records import Alert, Repeats
from lark_alert_middleware._sources.relay import alertmanager, generic, grafana, seq
from lark_alert_middleware._sources.relay.alerts import Notification
from lark_alert_middleware._sources.relay.payload import PayloadError
from lark_alert_middleware.relay import Relay, create_relay

from .conftest import GRAFANA_SECRET, TOKEN, payload

PARSERS: dict[str, Callable[[bytes], Notification]] = {
    "alertmanager": alertmanager.notification_of,
    "grafana": grafana.notification_of,
    "seq": lambda body: seq.notification_of(body, "https://seq.example.com/#/events"),
    "generic": generic.notification_of,
}
SETTINGS = CardSettings("relay", "production", "https://seq.example.com/#/events?filter={request_id}")
HOSTILE = '<at id=all></at> {{ 7*7 }} {% raw %} "\\u0000\n```\n**bold** [x](https://evil.example) \u202e'

texts = st.one_of(
    st.text(max_size=300),
    st.just(HOSTILE),
    st.integers(0, 50_000).map(lambda size: "x" * size),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def relay_for_properties() -> Iterator[Relay]:
    """A relay whose cards go to the log, taking whatever the property test sends it."""
    relay = create_relay(relay_token=TOKEN, relay_grafana_secret=GRAFANA_SECRET, enabled=False)
    yield relay


def card_of_each(notification: Notification) -> list[dict[str, Any]]:
    cards = []
    for alert in notification.alerts:
        event = alert.make_event()
        assert event.fingerprint is not None
        made = CardMaker(Redactor(), SETTINGS).alert_card(Alert(event.fingerprint, event, Repeats(0, None)))
        posted = message_body(made.rendered.json_text, None, 1_700_000_000)
        assert len(posted) <= 20 * 1024
        cards.append(json.loads(posted)["card"])
    return cards


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=2000) | json_values.map(lambda value: json.dumps(value).encode()))
def test_any_body_gives_alerts_or_a_payload_error(body: bytes) -> None:
    for parse in PARSERS.values():
        try:
            notification = parse(body)
        except PayloadError as error:
            assert str(error)
            continue
        card_of_each(notification)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.dictionaries(texts, texts, max_size=6),
    annotations=st.dictionaries(texts, texts, max_size=4),
    fingerprint=texts,
    url=texts,
    status=st.sampled_from(["firing", "resolved"]),
    tool=st.sampled_from(["alertmanager", "grafana"]),
)
def test_any_alert_text_makes_a_postable_card_that_pings_nobody(
    labels: dict[str, str], annotations: dict[str, str], fingerprint: str, url: str, status: str, tool: str
) -> None:
    document = payload(tool)
    alert = document["alerts"][0]
    alert.update(status=status, labels=labels, annotations=annotations, fingerprint=fingerprint)
    alert["generatorURL"] = "https://example.com/" + url
    document["externalURL"] = url
    for card in card_of_each(PARSERS[tool](json.dumps(document).encode())):
        assert count_mentions(markdown_text(card)) == 0
        assert card["header"]["title"]["content"][0] in "🔴🟠🔵🟢"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    properties=st.dictionaries(
        st.text(max_size=30).filter(lambda name: not name.startswith("@")), json_values
    ),
    message=texts,
    exception=texts,
    event_type=st.one_of(st.integers(), texts),
)
def test_any_seq_event_makes_a_postable_card_that_pings_nobody(
    properties: dict[str, Any], message: str, exception: str, event_type: int | str
) -> None:
    document = {**properties, "@mt": message or "x", "@m": message, "@x": exception, "@i": event_type}
    for card in card_of_each(PARSERS["seq"](json.dumps(document).encode())):
        assert count_mentions(markdown_text(card)) == 0


header_names = st.sampled_from(
    [b"authorization", b"content-length", b"expect", b"x-grafana-alerting-signature"]
)
header_values = st.binary(max_size=60) | st.sampled_from(
    [f"Bearer {TOKEN}".encode(), b"9" * 5000, b"100-continue", b"2000000"]
)


@settings(max_examples=80, deadline=None)
@given(
    path=st.sampled_from(["/alertmanager", "/grafana", "/seq", "/generic", "/healthz", "/", "/x/../seq"]),
    method=st.sampled_from(["POST", "GET", "PUT", "HEAD", "PROPFIND"]),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [b"authorization", b"content-length", b"expect", b"x-grafana-alerting-signature"]
            ),
            st.binary(max_size=60)
            | st.sampled_from([f"Bearer {TOKEN}".encode(), b"9" * 5000, b"100-continue"]),
        ),
        max_size=4,
    ),
    query=st.binary(max_size=80) | st.just(f"token={TOKEN}".encode()),
    body=st.binary(max_size=3000) | json_values.map(lambda value: json.dumps(value).encode()),
)
def test_nothing_a_client_sends_makes_a_server_error(
    relay_for_properties: Relay,
    path: str,
    method: str,
    headers: list[tuple[bytes, bytes]],
    query: bytes,
    body: bytes,
) -> None:
    answers: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        answers.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": headers}
    asyncio.run(relay_for_properties(scope, receive, send))
    assert answers[0]["status"] in (202, 400, 401, 404, 405, 413) or (path, answers[0]["status"]) == (
        "/healthz",
        200,
    )
