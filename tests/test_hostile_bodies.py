"""Property tests: whatever the bytes and whatever the headers claim, an excerpt is made, never an error,
and everything on the card encodes as UTF-8."""

from __future__ import annotations

import encodings.aliases
import gzip
import json
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_alert_middleware._card.excerpt import excerpt_body
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CardRenderer
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._records import CapturedBody, ErrorEvent, ExceptionText

# Names of codecs that raise, are no text codec, are no codec at all, or decode to lone surrogates.
HOSTILE_CHARSETS = ["undefined", "idna", "punycode", "rot13", "base64", "zlib", "bz2", "hex", "uu", "quopri"]
HOSTILE_CHARSETS += ["unicode_escape", "raw_unicode_escape", "utf-7", "mbcs", "x-none", ""]
# And every codec name Python knows.
CHARSETS = sorted({*encodings.aliases.aliases, *encodings.aliases.aliases.values(), *HOSTILE_CHARSETS})
MEDIA_TYPES = [
    "application/json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/octet-stream",
    "",
]


def nested_json(depth: int, opening: str) -> bytes:
    closing = {"[": "]", '{"a":': "}"}[opening]
    return (opening * depth + '"\\ud800"' + closing * depth).encode()


# Lone surrogates are a sliver of all code points: the ends of their ranges are drawn on their own too.
text_with_surrogates = st.text(
    st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]) | st.characters(exclude_categories=()),
    max_size=200,
)
payloads = st.one_of(
    st.binary(max_size=2000),
    text_with_surrogates.map(lambda text: text.encode("utf-8", "surrogatepass")),
    text_with_surrogates.map(lambda text: json.dumps({"v": text, text: [text]}).encode()),
    st.builds(nested_json, st.integers(1, 990), st.sampled_from(["[", '{"a":'])),
)


def with_charset(charsets: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda media, charset: f"{media}; charset={charset}",
        st.sampled_from(MEDIA_TYPES),
        st.sampled_from(charsets),
    )


content_types = st.one_of(
    st.none(),
    with_charset(HOSTILE_CHARSETS),
    with_charset(CHARSETS),
    st.sampled_from(MEDIA_TYPES),
    st.text(max_size=60),
)
ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": lambda data: data,
}


@st.composite
def captured_bodies(draw: st.DrawFn) -> CapturedBody:
    data = draw(payloads)
    encoding = draw(
        st.one_of(st.none(), st.sampled_from([*ENCODERS, "br", "gzip, gzip", "bogus"]), st.text(max_size=10))
    )
    if encoding in ENCODERS and draw(st.booleans()):
        data = ENCODERS[encoding](data)
    size = len(data)
    data = data[: draw(st.integers(0, len(data)))]  # the capture limit cut it, or not
    return CapturedBody(data, size, draw(content_types), encoding)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=captured_bodies())
def test_any_body_gives_an_excerpt_whose_text_encodes_as_utf8(body: CapturedBody) -> None:
    shown = excerpt_body(body, Redactor())
    shown.text.encode("utf-8")
    shown.note.encode("utf-8")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=captured_bodies(), message=text_with_surrogates, path=text_with_surrogates)
def test_any_body_message_and_path_give_a_card_that_encodes_as_utf8(
    body: CapturedBody, message: str, path: str
) -> None:
    event = ErrorEvent(
        timestamp=1_700_000_000.0,
        duration_seconds=0.01,
        method="POST",
        scheme="https",
        path="/" + path,
        route="/{rest:path}",
        query_string="",
        headers=(("content-type", body.content_type or ""),),
        client=None,
        request_id="rid",
        status_code=500,
        request_body=body,
        response_body=body,
        exception=None,
        exception_text=ExceptionText("Error" + message[:5], message, "Traceback\n" + message),
    )
    rendered = CardRenderer().render(build_view(event, "f", None, Redactor()), CardSettings("svc", "prod"))
    rendered.json_text.encode("utf-8")
    assert "Details were too large" not in rendered.json_text  # the full card, not the fallback
