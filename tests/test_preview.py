"""Cards as HTML: close to how Lark shows them, and nothing from a card can run or link in the page."""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CardRenderer
from lark_alert_middleware._card.sample import sample_event, sample_view
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._records import CapturedBody
from lark_alert_middleware.preview import ShownCard, card_html, markdown_html, page_html

from .conftest import client_for

SETTINGS = CardSettings("orders", "production", "https://logs.example.com/?rid={request_id}")
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\" onmouseover='x' <at id=all></at>"


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def text_of(fragment: str) -> str:
    """What a reader sees: tags removed, entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def assert_inert(fragment: str) -> None:
    tags = Tags(fragment).tags
    assert {tag for tag, _ in tags} <= {
        "article", "header", "div", "pre", "code", "strong", "span", "a", "hr", "br", "section",
        "details", "summary",
    }  # fmt: skip
    for _, attributes in tags:
        assert not any(name.startswith("on") for name in attributes)
        assert set(attributes) <= {"class", "href", "rel", "style", "title"}
        href = attributes.get("href")
        assert href is None or href.startswith(("http://", "https://"))


def test_the_default_card_shows_title_colour_fields_code_and_button() -> None:
    card = CardRenderer().render(sample_view(Redactor()), SETTINGS).card
    fragment = card_html(card)
    assert "500 POST /orders/{order_id}/split" in text_of(fragment)
    assert 'style="background:#f54a45;color:#fff"' in fragment  # red header
    assert fragment.count('class="field short"') == 8
    assert "<strong>Service</strong>" in fragment
    assert "<pre><code>Traceback (most recent call last):" in fragment
    assert '<a class="button primary" href="https://logs.example.com/?rid=3f1c2d9e8b7a4c6d"' in fragment
    assert '<div class="note">POST /orders/{order_id}/split 500 ZeroDivisionError</div>' in fragment


def test_hostile_request_data_on_a_rendered_card_is_shown_as_text() -> None:
    event = dataclasses.replace(
        sample_event(),
        path=f"/orders/{HOSTILE}",
        request_body=CapturedBody(HOSTILE.encode(), len(HOSTILE), "text/plain"),
    )
    card = CardRenderer().render(build_view(event, "f", None, Redactor()), SETTINGS).card
    fragment = card_html(card)
    assert_inert(fragment)
    assert "<script>alert(1)</script>" in text_of(fragment)  # visible, as Lark shows it
    assert 'class="mention"' not in fragment


def test_hostile_card_json_cannot_inject_markup() -> None:
    card: dict[str, Any] = {
        "header": {"template": 'red" onclick="x', "title": {"tag": "plain_text", "content": HOSTILE}},
        "elements": [
            {"tag": "markdown", "content": HOSTILE + "\n```\n" + HOSTILE + "\n```"},
            {"tag": "div", "text": {"tag": "lark_md", "content": f"**{HOSTILE}**"}},
            {"tag": "div", "fields": [{"is_short": True, "text": {"tag": "plain_text", "content": HOSTILE}}]},
            {"tag": "action", "actions": [
                {"tag": "button", "text": {"tag": "plain_text", "content": "x"}, "url": "javascript:x"},
                {"tag": "button", "text": {"tag": "plain_text", "content": "y"}, "url": 'https://a.example/"><b>'},
            ]},
            {"tag": "markdown", "content": "[click](javascript:alert(1)) [ok](https://ok.example/)"},
            {"tag": HOSTILE, "content": HOSTILE},
        ],
    }  # fmt: skip
    page = page_html(HOSTILE, [ShownCard(card, HOSTILE)], intro=HOSTILE)
    body = page.split("<body>", 1)[1]
    assert_inert(body.replace("<h1>", "<div>").replace('<p class="intro">', "<div>").replace("<main>", ""))
    assert "onclick" not in Tags(page).tags[0][1]
    assert '<a class="button default" href="https://a.example/&quot;&gt;&lt;b&gt;"' in page
    assert '<span class="button default" title="no http(s) link">x</span>' in page
    assert '<a href="https://ok.example/" rel="noopener noreferrer">ok</a>' in page


def test_entities_from_our_markdown_escaping_are_shown_as_the_characters() -> None:
    assert markdown_html("GET &#47;x&#47;&#60;at id=all&#62;&#42;&#42;b&#42;&#42;") == (
        "GET /x/&lt;at id=all&gt;**b**"
    )


def test_markdown_code_blocks_bold_mentions_and_newlines() -> None:
    rendered = markdown_html("<at id=all></at>\n**Query**\n```\na=1&#38;b\n```\nafter")
    assert rendered == (
        '<span class="mention">@all</span><br><strong>Query</strong><pre><code>a=1&amp;b</code></pre>after'
    )


def test_an_unclosed_code_block_runs_to_the_end_as_in_lark() -> None:
    assert (
        markdown_html("**T**\n```\nline 1\nline 2")
        == "<strong>T</strong><pre><code>line 1\nline 2</code></pre>"
    )


def test_unknown_elements_and_malformed_parts_are_shown_as_raw_json() -> None:
    card = {
        "elements": [
            {"tag": "column_set", "columns": []},
            "not an element",
            {"tag": "div", "text": {"tag": "lark_md"}},
        ]
    }
    fragment = card_html(card)
    assert fragment.count('<pre class="unknown">') == 3
    assert "column_set" in fragment


def test_card_json_2_0_body_elements_are_rendered() -> None:
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "**hi**"}]}}
    assert "<strong>hi</strong>" in card_html(card)


def test_a_page_lists_cards_in_order_with_raw_json_one_click_away() -> None:
    first = {"header": {"title": {"tag": "plain_text", "content": "first"}}, "elements": []}
    second = {"header": {"title": {"tag": "plain_text", "content": "second"}}, "elements": []}
    page = page_html("Inbox", [ShownCard(first, "a"), ShownCard(second, "b")])
    assert page.index("first") < page.index("second")
    assert page.count("<details><summary>Raw JSON</summary>") == 2
    raw = re.findall(r'<pre class="raw">(.*?)</pre>', page, re.DOTALL)
    assert [json.loads(text_of(block)) for block in raw] == [first, second]


@pytest.mark.anyio
async def test_the_demo_inbox_shows_a_sample_of_each_kind_of_card() -> None:
    from starlette.applications import Starlette

    from demo_app.inbox import inbox_routes

    async with client_for(Starlette(routes=inbox_routes(None))) as client:
        page = (await client.get("/_alerts/kinds")).text
    headers = re.findall(
        r'<header class="lark-card-header" style="background:(#\w+)[^"]*">([^<]*)</header>', page
    )
    assert [(colour, text_of(title).split(" · ")[0]) for colour, title in headers] == [
        ("#f54a45", "🔴 🆕 500 POST /orders/{order_id}/split"),
        ("#f54a45", "🔴 🔁 500 POST /orders/{order_id}/split"),
        ("#f54a45", "🔴 500 POST /orders/{order_id}/split"),
        ("#f54a45", "🔴 📈 500 POST /orders/{order_id}/split: now 1,042 times in 4 min"),
        ("#2ea121", "🟢 500 POST /orders/{order_id}/split: quiet for 10 min"),
        ("#3370ff", "📋 Daily summary: 1,551 errors"),
    ]
