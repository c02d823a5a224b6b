"""Property tests: whatever a client sends, the card is valid, small, mention-free and secret-free."""

from __future__ import annotations

import dataclasses
import encodings.aliases
import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CardRenderer
from lark_alert_middleware._card.sample import sample_event
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware._pipeline.fingerprint import fingerprint_of
from lark_alert_middleware._records import Alert, CapturedBody, ErrorEvent, Repeats

RENDERER = CardRenderer()
SETTINGS = CardSettings("svc", "production", "https://logs.example.com/{request_id}", "ALERT")
HOSTILE = [
    "<at id=all></at>",
    "<at id=ou_1>x</at>",
    "{{ 7*7 }}",
    "{% raw %}",
    '"},{"tag":"x',
    "\\",
    "\u202e",
    "\u2028",
    "\x00",
    "```",
    "](https://evil)",
    "&#60;at id=all&#62;",
    "<AT ID=ALL>",
]

text = st.one_of(
    st.text(max_size=300), st.sampled_from(HOSTILE), st.lists(st.sampled_from(HOSTILE)).map("".join)
)
body_bytes = st.one_of(
    st.binary(max_size=3000),
    text.map(lambda value: value.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
        max_leaves=30,
    ).map(lambda doc: json.dumps(doc).encode()),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "multipart/form-data; boundary=b",
        "text/html",
    ]
)
secret_value = st.text(string.ascii_letters + string.digits, min_size=16, max_size=24)


def header_text(value: str) -> str:
    return value.encode("latin-1", "replace").decode("latin-1")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=text,
    query=text,
    headers=st.lists(
        st.tuples(st.text(string.ascii_lowercase + "-", min_size=1, max_size=20), text), max_size=30
    ),
    request_body=body_bytes,
    request_type=content_types,
    response_body=body_bytes,
    response_type=content_types,
    message=text,
    captured_limit=st.integers(min_value=0, max_value=8192),
    secret=secret_value,
)
def test_any_request_renders_a_valid_small_safe_card(
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    request_body: bytes,
    request_type: str | None,
    response_body: bytes,
    response_type: str | None,
    message: str,
    captured_limit: int,
    secret: str,
) -> None:
    planted = {
        "header": f"Bearer {secret}A",
        "json": json.dumps({"user": "x", "password": secret + "B"}),
        "query": f"token={secret}C",
        "jwt": f"eyJ{secret}.eyJ{secret}.sig{secret}",
    }
    all_headers = (
        *((name, header_text(value)) for name, value in headers),
        ("authorization", planted["header"]),
        ("content-type", request_type or ""),
    )
    body = request_body + planted["json"].encode()
    event = ErrorEvent(
        timestamp=1_700_000_000.0,
        duration_seconds=0.01,
        method="POST",
        scheme="https",
        path="/" + path,
        route=None,
        query_string=f"{query}&{planted['query']}",
        headers=all_headers,
        client="203.0.113.1:1",
        request_id=message[:40] or "rid",
        status_code=500,
        request_body=CapturedBody(body[:captured_limit] if captured_limit else body, len(body), request_type),
        response_body=CapturedBody(
            response_body + planted["jwt"].encode(), len(response_body) + 99, response_type
        ),
        exception=ValueError(message + planted["jwt"]),
    )
    fingerprint = fingerprint_of(event.method, event.route, event.status_code, event.exception)
    rendered = RENDERER.render(
        build_view(event, fingerprint, Repeats(2, 1_699_999_000.0), Redactor()), SETTINGS
    )

    posted = message_body(rendered.json_text, "secret", 1_700_000_000)
    assert len(posted) <= 20 * 1024
    card = json.loads(posted)["card"]
    shown = json.dumps(card, ensure_ascii=False)
    assert count_mentions(markdown_text(card)) == 0
    for value in (secret + "A", secret + "B", secret + "C", f"eyJ{secret}"):
        assert value not in shown
    assert card["header"]["title"]["content"].startswith("ALERT ")


CODEC_NAMES = sorted(
    set(encodings.aliases.aliases.values()) | {"undefined", "idna", "punycode", "rot13", "x"}
)


def nested(depth: int, opening: str, closing: str, leaf: str = "1") -> bytes:
    return (opening * depth + leaf + closing * depth).encode()


hostile_body = st.one_of(
    body_bytes,
    st.integers(min_value=1, max_value=3000).map(lambda depth: nested(depth, "[", "]")),
    st.integers(min_value=1, max_value=3000).map(lambda depth: nested(depth, '{"a":', "}")),
    st.sampled_from([b'"\\ud800"', b'{"k": "\\udfff\\ud800"}', b"\xed\xa0\x80"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=hostile_body,
    charset=st.sampled_from(CODEC_NAMES),
    kind=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", None]),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]),
    failing_word=st.sampled_from([None, "a", "e", "GET", "Traceback", "1"]),
)
def test_a_claimed_error_always_makes_a_postable_card(
    body: bytes, charset: str, kind: str | None, encoding: str | None, failing_word: str | None
) -> None:
    scrub_failed = []

    def scrub(text: str) -> str:  # a user's hook with a bug that some text triggers
        if failing_word is not None and failing_word in text:
            scrub_failed.append(text)
            raise RuntimeError("scrub failed")
        return text

    content_type = f"{kind}; charset={charset}" if kind else None
    event = dataclasses.replace(
        sample_event(),
        request_body=CapturedBody(body, len(body), content_type, encoding),
        response_body=CapturedBody(body, len(body) + 1, content_type),
        query_string="q=" + body[:200].decode("latin-1"),
    )
    made = CardMaker(Redactor(scrub=scrub), SETTINGS).alert_card(
        Alert("POST /orders 500", event, Repeats(0, None))
    )
    posted = message_body(made.rendered.json_text, "secret", 1_700_000_000)
    assert len(posted) <= 20 * 1024
    shown = json.loads(posted.decode("utf-8"))["card"]
    assert shown["header"]["title"]["content"].startswith("ALERT 🔴 500 POST /orders/{order_id}/split · ")
    notes = [element["content"] for element in shown["elements"] if "Not shown" in element.get("content", "")]
    if scrub_failed:  # the parts the hook failed on are named, and the rest of the card is there
        assert not made.complete and len(notes) == 1
        assert "RuntimeError" in notes[0] and len(shown["elements"]) > 2
    else:  # whatever the bytes, the full card, with both bodies
        assert made.complete and notes == []
        bodies = sum(" body**" in element.get("content", "") for element in shown["elements"])
        assert bodies == (2 if body else 1)  # an empty request body is not listed
    assert made.summary.startswith("500 POST /orders/{order_id}/split · svc (production)")
