"""Lark card JSON as HTML, close to how Lark shows it: the demo's inbox and `lark-alert preview --html`.

Cards carry request data, and request data is hostile: every text, attribute and URL from a
card is escaped here, links are kept only for http(s), and colours come from a fixed list.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Lark's header templates, as solid colours with white titles.
HEADER_COLOURS = {
    "blue": "#3370ff",
    "wathet": "#2ea3e0",
    "turquoise": "#14b8a6",
    "green": "#2ea121",
    "yellow": "#d99a00",
    "orange": "#f5780a",
    "red": "#f54a45",
    "carmine": "#c9225b",
    "violet": "#b23bc7",
    "purple": "#7f3bf5",
    "indigo": "#4954e6",
    "grey": "#8f959e",
}
BUTTON_TYPES = frozenset({"default", "primary", "danger"})

# A fenced block runs to its closing fence or, as in Lark, to the end of the text.
_FENCE = re.compile(r"```[\w+-]*\n?(.*?)(?:\n?```|\Z)", re.DOTALL)
_INLINE = re.compile(
    r"\*\*(?P<bold>.+?)\*\*"
    r"|<at id=(?P<mention>[^>]{1,64})></at>"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<url>https?://[^)\s]+)\)"
)


@dataclass(frozen=True, slots=True)
class ShownCard:
    """One card on a page, with a caption above it (when it arrived, how big it was)."""

    card: Mapping[str, Any]
    caption: str = ""


def _escape(text: str) -> str:
    """Lark shows `&#60;` as `<`: decode the entities our escaping produces, then escape for HTML."""
    return html.escape(html.unescape(text), quote=True).replace("\n", "<br>")


def _inline(text: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(_escape(text[position : match.start()]))
        if match["bold"] is not None:
            parts.append(f"<strong>{_escape(match['bold'])}</strong>")
        elif match["mention"] is not None:
            parts.append(f'<span class="mention">@{_escape(match["mention"])}</span>')
        else:
            url = html.escape(match["url"], quote=True)
            parts.append(f'<a href="{url}" rel="noopener noreferrer">{_escape(match["label"])}</a>')
        position = match.end()
    parts.append(_escape(text[position:]))
    return "".join(parts)


def markdown_html(content: str) -> str:
    """Lark card markdown: fenced code blocks, **bold**, mentions, http(s) links; the rest is text."""
    parts: list[str] = []
    position = 0
    for match in _FENCE.finditer(content):
        before = content[position : match.start()].removesuffix("\n")
        parts.append(_inline(before))
        code = html.escape(html.unescape(match.group(1)), quote=True)
        parts.append(f"<pre><code>{code}</code></pre>")
        position = match.end()
        if content.startswith("\n", position):
            position += 1
    parts.append(_inline(content[position:]))
    return "".join(parts)


def _raw(value: object) -> str:
    """What this renderer does not know, shown as the JSON it is."""
    text = json.dumps(value, ensure_ascii=False, indent=2, default=repr)
    return f'<pre class="unknown">{html.escape(text, quote=True)}</pre>'


def text_html(text_object: object) -> str:
    """A `plain_text` or `lark_md` text object."""
    if not isinstance(text_object, Mapping) or not isinstance(text_object.get("content"), str):
        return _raw(text_object)
    content: str = text_object["content"]
    if text_object.get("tag") == "lark_md":
        return markdown_html(content)
    if text_object.get("tag") == "plain_text":
        return html.escape(content, quote=True).replace("\n", "<br>")
    return _raw(text_object)


def _div(element: Mapping[str, Any]) -> str:
    parts = []
    if "text" in element:
        parts.append(f'<div class="text">{text_html(element["text"])}</div>')
    fields = element.get("fields")
    if isinstance(fields, list):
        cells = []
        for field in fields:
            if not isinstance(field, Mapping):
                cells.append(f'<div class="field">{_raw(field)}</div>')
                continue
            width = "field short" if field.get("is_short") is True else "field"
            cells.append(f'<div class="{width}">{text_html(field.get("text"))}</div>')
        parts.append(f'<div class="fields">{"".join(cells)}</div>')
    return "".join(parts) or _raw(element)


def _markdown(element: Mapping[str, Any]) -> str:
    content = element.get("content")
    if not isinstance(content, str):
        return _raw(element)
    return f'<div class="markdown">{markdown_html(content)}</div>'


def _hr(element: Mapping[str, Any]) -> str:
    return "<hr>"


def _safe_url(value: object) -> str | None:
    if isinstance(value, str) and re.match(r"https?://", value, re.IGNORECASE):
        return html.escape(value, quote=True)
    return None


def _button(button: object) -> str:
    if not isinstance(button, Mapping) or button.get("tag") != "button":
        return _raw(button)
    kind = button.get("type") if button.get("type") in BUTTON_TYPES else "default"
    label = text_html(button.get("text"))
    multi_url = button.get("multi_url")
    url = _safe_url(button.get("url") or (multi_url.get("url") if isinstance(multi_url, Mapping) else None))
    if url is None:
        return f'<span class="button {kind}" title="no http(s) link">{label}</span>'
    return f'<a class="button {kind}" href="{url}" rel="noopener noreferrer">{label}</a>'


def _action(element: Mapping[str, Any]) -> str:
    actions = element.get("actions")
    if not isinstance(actions, list):
        return _raw(element)
    return f'<div class="actions">{"".join(_button(button) for button in actions)}</div>'


def _note(element: Mapping[str, Any]) -> str:
    items = element.get("elements")
    if not isinstance(items, list):
        return _raw(element)
    shown = []
    for item in items:
        is_image = isinstance(item, Mapping) and item.get("tag") == "img"
        shown.append('<span class="image">[image]</span>' if is_image else text_html(item))
    return f'<div class="note">{" ".join(shown)}</div>'


ELEMENTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "div": _div,
    "markdown": _markdown,
    "hr": _hr,
    "action": _action,
    "note": _note,
}


def element_html(element: object) -> str:
    if not isinstance(element, Mapping):
        return _raw(element)
    render = ELEMENTS.get(str(element.get("tag")))
    return render(element) if render is not None else _raw(element)


def _header(header: object) -> str:
    if not isinstance(header, Mapping):
        return ""
    colour = HEADER_COLOURS.get(str(header.get("template")))
    style = f' style="background:{colour};color:#fff"' if colour else ""
    return f'<header class="lark-card-header"{style}>{text_html(header.get("title"))}</header>'


def card_html(card: Mapping[str, Any]) -> str:
    """One card (JSON 1.0 `elements`, or 2.0 `body.elements`) as an HTML fragment."""
    elements = card.get("elements")
    body = card.get("body")
    if elements is None and isinstance(body, Mapping):
        elements = body.get("elements")
    if isinstance(elements, list):
        shown = "".join(element_html(element) for element in elements)
    else:
        shown = _raw(elements)
    return (
        f'<article class="lark-card">{_header(card.get("header"))}'
        f'<div class="lark-card-body">{shown}</div></article>'
    )


def page_html(title: str, cards: Iterable[ShownCard], *, intro: str = "") -> str:
    """A whole HTML page of cards in the order given, each with its raw JSON one click away."""
    entries = []
    for shown in cards:
        raw = html.escape(json.dumps(shown.card, ensure_ascii=False, indent=2, default=repr), quote=True)
        entries.append(
            '<section class="entry">'
            f'<div class="caption">{html.escape(shown.caption, quote=True)}</div>'
            f"{card_html(shown.card)}"
            f'<details><summary>Raw JSON</summary><pre class="raw">{raw}</pre></details>'
            "</section>"
        )
    empty = '<p class="empty">No cards yet.</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title, quote=True)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title, quote=True)}</h1>"
        f'<p class="intro">{html.escape(intro, quote=True)}</p>'
        f"<main>{''.join(entries) or empty}</main></body></html>"
    )


STYLE = """
body{margin:0;padding:24px;background:#f2f3f5;color:#1f2329;
  font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI","PingFang SC",Roboto,sans-serif}
h1{font-size:20px;margin:0 0 4px}
.intro{color:#646a73;margin:0 0 20px;max-width:720px}
main{display:flex;flex-direction:column;gap:20px;max-width:720px}
.caption{color:#8f959e;font-size:12px;margin:0 0 6px 4px}
.lark-card{background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(31,35,41,.12);overflow:hidden}
.lark-card-header{padding:12px 16px;font-size:16px;font-weight:600;border-bottom:1px solid #dee0e3}
.lark-card-body{padding:12px 16px;display:flex;flex-direction:column;gap:10px}
.fields{display:flex;flex-wrap:wrap;row-gap:8px}
.field{flex:0 0 100%;overflow-wrap:anywhere}
.field.short{flex:0 0 50%}
.markdown,.text{overflow-wrap:anywhere}
pre{margin:4px 0 0;padding:8px 10px;background:#f5f6f7;border-radius:4px;white-space:pre-wrap;
  overflow-wrap:anywhere;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
  max-height:260px;overflow:auto}
pre.unknown{border-left:3px solid #f5780a}
hr{border:0;border-top:1px solid #dee0e3;margin:0;width:100%}
.actions{display:flex;gap:8px;flex-wrap:wrap}
.button{display:inline-block;padding:4px 14px;border-radius:6px;border:1px solid #d0d3d6;
  color:#1f2329;text-decoration:none;background:#fff}
.button.primary{background:#3370ff;border-color:#3370ff;color:#fff}
.button.danger{background:#f54a45;border-color:#f54a45;color:#fff}
.note{color:#8f959e;font-size:12px;overflow-wrap:anywhere}
.mention{color:#3370ff}
details{margin:6px 0 0 4px}
summary{cursor:pointer;color:#3370ff;font-size:12px}
.empty{color:#8f959e}
"""
