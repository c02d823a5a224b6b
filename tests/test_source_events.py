"""Events of failures after the response, of websockets and of start-up, from whatever the client
or the app put in them: each makes a card that fits, pings nobody and shows no secret."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.view import CardSettings
from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware._records import Alert, ErrorEvent, Repeats
from lark_alert_middleware._sources.after_response import Moment, after_response_event
from lark_alert_middleware._sources.http import captured_event
from lark_alert_middleware._sources.startup import startup_event
from lark_alert_middleware._sources.websocket import Session, websocket_event

SETTINGS = CardSettings("orders", "production")
HOSTILE = '<at id=all></at> {{ 7*7 }} {% raw %} "\\u0000\n```\n**bold** [x](https://evil.example) \udcff'
SECRET = "tok_live_5ecret5ecret5ecret"


class Hostile(Exception):
    """An exception whose text and representation raise, or are whatever was drawn."""

    def __init__(self, text: str | None) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        if self.text is None:
            raise RuntimeError("no text")
        return self.text

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


texts = st.one_of(
    st.text(max_size=300),
    st.just(HOSTILE),
    st.integers(0, 1_000_000).map(lambda size: "x" * size),
)


def scope_of(path: str, header_value: str, *, websocket: bool) -> dict[str, Any]:
    encoded = header_value.encode("utf-8", "surrogatepass")
    return {
        "type": "websocket" if websocket else "http",
        "method": "POST",
        "scheme": "wss" if websocket else "https",
        "path": path,
        "query_string": b"token=" + SECRET.encode() + b"&q=" + encoded[:1000],
        "headers": [(b"authorization", b"Bearer " + SECRET.encode()), (b"x-note", encoded)],
        "client": ("203.0.113.7", 50000),
    }


def posted_card(event: ErrorEvent) -> dict[str, Any]:
    made = CardMaker(Redactor(), SETTINGS).alert_card(
        Alert(event.fingerprint or "f", event, Repeats(3, None))
    )
    posted = message_body(made.rendered.json_text, None, 1_700_000_000)
    assert len(posted) <= 20 * 1024
    card: dict[str, Any] = json.loads(posted)["card"]
    return card


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=texts, header_value=texts, message=st.one_of(st.none(), texts), source=st.sampled_from(range(3)))
def test_whatever_the_failure_carries_its_card_fits_pings_nobody_and_hides_secrets(
    path: str, header_value: str, message: str | None, source: int
) -> None:
    exception = Hostile(message)
    if source == 0:
        scope = scope_of(path, header_value, websocket=False)
        request = captured_event(scope, 200, exception, 0.01, None, None)
        event = after_response_event(request, Moment.BACKGROUND_TASK)
    elif source == 1:
        event = websocket_event(
            scope_of(path, header_value, websocket=True), exception, Session(3.0, 4, 5, True)
        )
    else:
        # An exception whose text raises, or an app's own reason for failing.
        event = startup_event(exception if message is None else None, message, 0.5)
    card = posted_card(event)
    assert count_mentions(markdown_text(card)) == 0
    assert SECRET not in json.dumps(card, ensure_ascii=False)
    assert card["header"]["title"]["content"].startswith("🔴 ")
