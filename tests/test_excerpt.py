"""Body excerpts for any bytes: JSON, forms, text, binary, compressed, broken."""

from __future__ import annotations

import gzip
import json

import pytest

from lark_alert_middleware._card.excerpt import excerpt_body, printable
from lark_alert_middleware._card.redact import WINDOW, Redactor
from lark_alert_middleware._records import CapturedBody


def excerpt(
    data: bytes, content_type: str | None = None, *, size: int | None = None, encoding: str | None = None
):  # type: ignore[no-untyped-def]
    return excerpt_body(
        CapturedBody(data, size if size is not None else len(data), content_type, encoding), Redactor()
    )


def test_json_is_pretty_printed_and_redacted() -> None:
    shown = excerpt(b'{"a":1,"password":"p","nested":{"token":"t"}}', "application/json")
    assert shown.kind == "json"
    assert json.loads(shown.text) == {
        "a": 1,
        "password": "[redacted password]",
        "nested": {"token": "[redacted token]"},
    }


def test_cut_off_json_is_shown_as_text_still_redacted() -> None:
    shown = excerpt(b'{"password": "hunter2", "items": [1, 2', "application/json", size=10_000)
    assert shown.kind == "text" and "hunter2" not in shown.text
    assert "first 38 of 10,000 bytes" in shown.note


def test_forms_show_fields_with_secrets_removed() -> None:
    shown = excerpt(b"user=ann&password=hunter2", "application/x-www-form-urlencoded")
    assert shown.text == "user=ann\npassword=[redacted password]"


def test_multipart_shows_fields_and_describes_files() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="secret"\r\n\r\nshh\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG....\r\n--XyZ--\r\n"
    )
    shown = excerpt(body, "multipart/form-data; boundary=XyZ")
    assert shown.kind == "multipart"
    assert "note=hello" in shown.text and "shh" not in shown.text
    assert "file: <file 'a.png'" in shown.text


def test_binary_is_described_not_shown() -> None:
    shown = excerpt(bytes(range(256)) * 4, "application/octet-stream")
    assert shown.kind == "binary"
    assert shown.text == "binary, 1,024 bytes, application/octet-stream"


def test_binary_without_a_content_type_is_detected() -> None:
    assert excerpt(b"\x00\x01\x02\x03garbage\x00" * 10).kind == "binary"


def test_gzip_bodies_are_decoded_even_when_cut_off() -> None:
    compressed = gzip.compress(b'{"error": "upstream timeout"}' * 100)
    shown = excerpt(compressed[:200], "application/json", size=len(compressed), encoding="gzip")
    assert shown.kind == "text" and "upstream timeout" in shown.text
    assert "gzip-decoded" in shown.note


def test_invalid_utf8_is_shown_with_replacement_characters() -> None:
    shown = excerpt(b"caf\xc3\xa9 and \xff\xfe broken", "text/plain")
    assert shown.text.startswith("café and ") and "\ufffd" in shown.text
    assert "invalid UTF-8" in shown.note


def test_a_multibyte_character_cut_at_the_capture_limit_is_not_an_error() -> None:
    shown = excerpt("ü".encode() * 3 + "ü".encode()[:1], "text/plain", size=100)
    assert shown.text == "üüü" and "invalid" not in shown.note


def test_control_and_bidi_characters_become_visible() -> None:
    assert printable("a\x1b[31mred\u202egnp.exe\u2028x") == "a\\u001b[31mred\\u202egnp.exe\\u2028x"


def test_deeply_nested_json_is_shown_to_a_bounded_depth() -> None:
    deep = "[" * 50 + "]" * 50
    shown = excerpt(deep.encode(), "application/json")
    assert shown.kind == "json" and "items]" in shown.text


def test_json_nested_beyond_the_parser_limit_is_shown_as_text() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    shown = excerpt(deep.encode(), "application/json")
    assert shown.kind == "text"


@pytest.mark.parametrize(
    "charset",
    ["undefined", "idna", "punycode", "rot13", "base64", "zlib", "hex", "unicode_escape", "no-such-charset"],
)
def test_a_charset_python_cannot_decode_with_falls_back_to_utf8_and_says_so(charset: str) -> None:
    shown = excerpt('{"name": "café", "password": "S3CR3T"}'.encode(), f"application/json; charset={charset}")
    assert shown.kind == "json" and "café" in shown.text and "S3CR3T" not in shown.text
    assert f"charset {charset} not decodable, shown as UTF-8" in shown.note


def test_a_declared_charset_python_knows_is_used() -> None:
    shown = excerpt("naïve".encode("latin-1"), "text/plain; Charset=ISO-8859-1")
    assert shown.text == "naïve" and shown.note == ""


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_hundreds_deep_is_shown_to_a_bounded_depth(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    deep = opening * 500 + "1" + closing * 500  # about 1 KB; json.loads accepts it
    shown = excerpt(deep.encode(), "application/json")
    assert shown.kind == "json" and ("1 items]" in shown.text or "1 keys}" in shown.text)


def test_a_lone_surrogate_in_json_is_shown_as_an_escape() -> None:
    shown = excerpt(b'{"name": "\\ud800", "key\\udfff": 1}', "application/json")
    assert "\\ud800" in shown.text and "\\udfff" in shown.text
    shown.text.encode("utf-8")


def test_lone_surrogates_are_printable_escapes() -> None:
    assert printable("a\ud800b\udfffc") == "a\\ud800b\\udfffc"


def test_a_utf7_body_that_decodes_to_lone_surrogates_still_encodes() -> None:
    shown = excerpt(b"+2AA- and more", "text/plain; charset=utf-7")
    assert "\\ud800" in shown.text
    shown.text.encode("utf-8")


@pytest.mark.parametrize(
    "disposition",
    [
        "form-data; name=password",
        "form-data; NAME=password",
        'form-data; Name="Password"',
        'form-data; filename="x.txt"; name="password"',
    ],
)
def test_multipart_part_names_are_found_quoted_or_not_in_any_case(disposition: str) -> None:
    body = f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\nS3CR3T\r\n--XyZ--\r\n".encode()
    shown = excerpt(body, "multipart/form-data; boundary=XyZ")
    assert "S3CR3T" not in shown.text
    assert "[redacted password]" in shown.text or "password: <file 'x.txt'" in shown.text


def test_a_long_text_body_is_redacted_only_as_far_as_a_card_shows() -> None:
    shown = excerpt(b"token=S3CR3T " + b"word " * 200_000, "text/plain")
    assert shown.text.startswith("token=[redacted token] word") and shown.text.endswith("…")
    assert len(shown.text) < WINDOW + 100  # markers can be longer than what they replace


def test_a_long_json_body_is_shown_as_far_as_a_card_shows() -> None:
    document = [{"id": index, "password": "S3CR3T"} for index in range(50_000)]
    shown = excerpt(json.dumps(document).encode(), "application/json")
    assert shown.kind == "json" and "S3CR3T" not in shown.text and "more items" in shown.text
    assert len(shown.text) < 4 * WINDOW
