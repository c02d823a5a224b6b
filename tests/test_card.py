"""Card rendering: escaping by default, template checks, and the 20 KiB limit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lark_alert_middleware._card.markup import count_mentions, escape_code, escape_markdown, mention_markup
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CARD_BUDGET, CardRenderer
from lark_alert_middleware._card.sample import sample_event
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._config import ConfigurationError
from lark_alert_middleware._records import CapturedBody, Repeats

from .conftest import card_full_title

SETTINGS = CardSettings("orders", "production", "https://logs.example.com/?rid={request_id}")


def render(**changes: object) -> dict[str, object]:
    event = dataclasses.replace(sample_event(), **changes)  # type: ignore[arg-type]
    view = build_view(event, "POST /orders 500", Repeats(0, None), Redactor())
    return CardRenderer().render(view, SETTINGS).card


def all_text(card: object) -> str:
    return json.dumps(card, ensure_ascii=False)


def test_the_default_card_has_the_facts_a_reader_needs() -> None:
    card = render()
    text = all_text(card)
    assert card["header"]["template"] == "red"  # type: ignore[index]
    assert card_full_title(card) == "🔴 500 POST /orders/{order_id}/split · orders · production"
    for fact in (
        "orders · production",
        "Internal Server Error",
        "3f1c2d9e8b7a4c6d",
        "ZeroDivisionError",
        "Traceback",
        "12.3 ms",
        "2026-01-01 00:00:00 UTC",
    ):
        assert fact in text
    assert "https://logs.example.com/?rid=3f1c2d9e8b7a4c6d" in text


def test_4xx_cards_are_orange() -> None:
    card = render(status_code=404, exception=None)
    assert card["header"]["template"] == "orange"  # type: ignore[index]


def test_markdown_in_request_data_cannot_mention_link_or_format() -> None:
    hostile = "<at id=all></at> [click](https://evil.example) **bold** ![img](key) <font color=red>x</font>"
    card = render(
        path=f"/orders/{hostile}",
        query_string=f"q={hostile}",
        request_body=CapturedBody(hostile.encode(), len(hostile), "text/plain"),
    )
    text = all_text(card)
    assert count_mentions(text) == 0
    assert "](https" not in text and "<font" not in text
    request_field = next(
        field["text"]["content"]
        for field in card["elements"][0]["fields"]  # type: ignore[index]
        if "Request**" in field["text"]["content"]
    )
    assert "**bold**" not in request_field and "&#42;&#42;bold&#42;&#42;" in request_field


def test_jinja_syntax_in_request_data_is_shown_as_text() -> None:
    payload = "{{ 7 * 7 }} {% for x in range(3) %}loop{% endfor %}"
    card = render(request_body=CapturedBody(payload.encode(), len(payload), "text/plain"))
    text = all_text(card)
    assert "{{ 7 * 7 }}" in text
    assert "49" not in text and "looplooploop" not in text


def test_configured_mentions_are_the_only_mentions_and_only_for_errors() -> None:
    settings = dataclasses.replace(SETTINGS, mentions=mention_markup(("all", "ou_123")))
    view = build_view(sample_event(), "f", None, Redactor())
    assert count_mentions(all_text(CardRenderer().render(view, settings).card)) == 2
    view_404 = build_view(
        dataclasses.replace(sample_event(), status_code=404, exception=None), "f", None, Redactor()
    )
    assert count_mentions(all_text(CardRenderer().render(view_404, settings).card)) == 0


def test_a_megabyte_body_is_cut_to_fit_and_says_so() -> None:
    body = ("ü" * 1_000_000).encode()
    event = dataclasses.replace(
        sample_event(),
        request_body=CapturedBody(body[:8192], len(body), "text/plain"),
        response_body=CapturedBody(body[:8192], len(body), "text/plain"),
        headers=tuple((f"x-header-{index}", "v" * 300) for index in range(200)),
    )
    view = build_view(event, "f", None, Redactor())
    rendered = CardRenderer().render(view, SETTINGS)
    assert rendered.size <= CARD_BUDGET
    assert "characters not shown" in all_text(rendered.card)
    assert "x&#45;header" not in rendered.json_text or "x-header-0" in rendered.json_text


def test_when_nothing_fits_a_minimal_card_still_goes_out(tmp_path: Path) -> None:
    template = tmp_path / "huge.json.j2"
    padding = "{% for i in range(30000) %}x{% endfor %}"
    template.write_text('{"elements": [{"tag": "markdown", "content": "{{ title }}' + padding + '"}]}')
    renderer = CardRenderer(template)
    rendered = renderer.render(build_view(sample_event(), "f", None, Redactor()), SETTINGS)
    assert rendered.size <= CARD_BUDGET
    assert card_full_title(rendered.card) == "🔴 500 POST /orders/{order_id}/split · orders · production"


def test_a_template_that_renders_a_mention_from_data_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "unsafe.json.j2"
    template.write_text('{"elements": [{"tag": "markdown", "content": "{{ path | plain }}"}]}')
    event = dataclasses.replace(sample_event(), path="/<at id=all></at>")
    rendered = CardRenderer(template).render(build_view(event, "f", None, Redactor()), SETTINGS)
    assert count_mentions(all_text(rendered.card)) == 0  # fell back to the minimal card


def test_a_custom_template_is_checked_with_a_sample(tmp_path: Path) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{"elements": [{"tag": "markdown", "content": "{{ no_such_variable }}"}]}')
    renderer = CardRenderer(template)
    with pytest.raises(ConfigurationError, match="no_such_variable"):
        renderer.check(build_view(sample_event(), "f", None, Redactor()), SETTINGS)


def test_escapes_use_numeric_entities() -> None:
    assert escape_markdown("<at id=all>") == "&#60;at id=all&#62;"
    assert escape_code("```<x>") == "&#96;&#96;&#96;&#60;x&#62;"
    assert escape_code("[a](b) [1, 2] (3)") == "[a]&#40;b) [1, 2] (3)"


def test_a_megabyte_of_single_line_json_shows_its_start_and_its_size() -> None:
    document = json.dumps({"items": [{"id": index, "name": "x" * 20} for index in range(30_000)]}).encode()
    assert len(document) > 1_000_000 and b"\n" not in document
    card = render(request_body=CapturedBody(document[:8192], len(document), "application/json"))
    text = all_text(card)
    assert f"first 8,192 of {len(document):,} bytes" in text
    assert '{\\"items\\": [{\\"id\\": 0' in text


def test_when_content_is_cut_the_facts_that_identify_the_error_stay() -> None:
    huge = ("y" * 5000).encode()
    event = dataclasses.replace(
        sample_event(),
        headers=tuple((f"x-h-{index}", "v" * 300) for index in range(300)),
        request_body=CapturedBody(huge, 10**6, "text/plain"),
        response_body=CapturedBody(huge, 10**6, "text/plain"),
        exception=ValueError("m" * 10_000),
    )
    rendered = CardRenderer().render(build_view(event, "POST /orders 500", None, Redactor()), SETTINGS)
    text = all_text(rendered.card)
    assert rendered.size <= CARD_BUDGET
    for fact in ("500 POST /orders/{order_id}/split", "3f1c2d9e8b7a4c6d", "500 Internal Server Error"):
        assert fact in text
    assert "characters not shown" in text


def test_binary_and_compressed_bodies_are_described() -> None:
    import gzip

    packed = gzip.compress(b'{"error": "inventory down"}')
    card = render(
        request_body=CapturedBody(bytes(range(256)), 256, "application/octet-stream"),
        response_body=CapturedBody(packed, len(packed), "application/json", "gzip"),
    )
    text = all_text(card)
    assert "binary, 256 bytes, application/octet-stream" in text
    assert "inventory down" in text and "gzip&#45;decoded" in text


def test_invisible_and_reordering_characters_are_made_visible() -> None:
    tricky = "pay\u202egnp.exe\u2028next\x1b[2J"
    card = render(request_body=CapturedBody(tricky.encode(), len(tricky.encode()), "text/plain"))
    text = all_text(card)
    assert "\u202e" not in text and "\u2028" not in text and "\x1b" not in text
    assert "\\\\u202e" in text and "\\\\u2028" in text and "\\\\u001b" in text
