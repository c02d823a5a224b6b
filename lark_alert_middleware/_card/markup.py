"""Escaping for the places text goes on a Lark card: JSON strings, lark_md/markdown, code blocks.

Lark's card markdown interprets `<at id=all></at>`, links, images, `<font>` and emphasis.
Its documented escape is the numeric HTML entity (`&#60;` for `<`), which is used here for
every character that could start markup, so text from a request always shows as text.
"""

from __future__ import annotations

import re
from json import dumps as json_dumps
from typing import Any

# Characters Lark's markdown documentation lists as needing entities, plus `&` and `|`
# so that entity-looking input and table pipes also show literally.
_MARKDOWN_SPECIAL = re.compile(r"[&<>*_~\[\]()#!+\-`$:\\/|\"']")
# Inside a code block: what could close it or open a tag, and the `(` of a `](` link.
_CODE_SPECIAL = re.compile(r"[&<>`]|(?<=\])\(")
_MENTION = re.compile(r"<at\b", re.IGNORECASE)


class LarkText(str):
    """Text already escaped for its place on the card; the template only JSON-encodes it."""

    __slots__ = ()


def _entity(match: re.Match[str]) -> str:
    return f"&#{ord(match.group(0))};"


def escape_markdown(text: str) -> str:
    """For `lark_md` text and `markdown` elements: nothing in `text` can format, link or mention."""
    return _MARKDOWN_SPECIAL.sub(_entity, text)


def escape_code(text: str) -> str:
    """For the inside of a ``` block: cannot close the block or open a tag."""
    return _CODE_SPECIAL.sub(_entity, text)


def escape_json_string(text: str) -> str:
    """The inside of a JSON string literal (no surrounding quotes)."""
    return json_dumps(text, ensure_ascii=False)[1:-1]


def count_mentions(text: str) -> int:
    return len(_MENTION.findall(text))


def markdown_text(node: Any) -> str:
    """The text of a card that Lark reads as markdown (`markdown` elements, `lark_md` texts).

    `plain_text` is shown as is, so only this text could ever mention or link.
    """
    if isinstance(node, list):
        return "\n".join(markdown_text(item) for item in node)
    if not isinstance(node, dict):
        return ""
    own = node.get("content") if node.get("tag") in ("markdown", "lark_md") else None
    parts = [own] if isinstance(own, str) else []
    parts.extend(markdown_text(value) for value in node.values() if isinstance(value, (dict, list)))
    return "\n".join(parts)


def mention_markup(targets: tuple[str, ...]) -> LarkText:
    """`all` or user ids from configuration (validated there), as Lark mention tags."""
    return LarkText("".join(f"<at id={target}></at>" for target in targets))
