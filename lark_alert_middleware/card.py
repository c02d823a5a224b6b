"""Render an alert into a Lark interactive card with a Jinja2 template, and fit it into 20 KiB.

Every `{{ ... }}` in a card template stands inside a JSON string. Its value is escaped for
that string and, unless a filter says otherwise, for Lark markdown too. Request data is
only ever a value passed to the template, never template source.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from .config import ConfigurationError
from .digest import DigestSummary
from .markup import (
    LarkText,
    count_mentions,
    escape_code,
    escape_json_string,
    escape_markdown,
    markdown_text,
)
from .view import FULL_SIZES, AlertView, CardSettings, Sizes, digest_variables, template_variables

logger = logging.getLogger("lark_alert_middleware")

LARK_BODY_LIMIT = 20 * 1024
# The signed envelope around the card: {"timestamp":"…","sign":"…","msg_type":"interactive","card":…}
ENVELOPE_BYTES = 128
CARD_BUDGET = LARK_BODY_LIMIT - ENVELOPE_BYTES

# Tried in order until the card fits: bodies and traceback shrink before anything else.
SHRINKING_SIZES = (
    FULL_SIZES,
    Sizes(body=700, traceback=1500, message=400, header_count=20, value=200),
    Sizes(body=300, traceback=800, message=300, header_count=12, value=120),
    Sizes(body=0, traceback=300, message=200, header_count=0, value=80),
)


def _finalize(value: Any) -> Any:
    if isinstance(value, LarkText):
        return escape_json_string(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return escape_json_string(escape_markdown(str(value)))


def _plain(value: Any) -> LarkText:
    """For `plain_text` fields and URLs: JSON-escaped only, shown exactly as is."""
    return LarkText("" if value is None else str(value))


def _code(value: Any) -> LarkText:
    """For the inside of a ``` code block."""
    return LarkText(escape_code("" if value is None else str(value)))


def _markdown(value: Any) -> LarkText:
    return LarkText(escape_markdown("" if value is None else str(value)))


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=loader,
        autoescape=False,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(plain=_plain, code=_code, md=_markdown)
    return environment


@dataclass(frozen=True, slots=True)
class RenderedCard:
    """A card ready to post: its compact JSON text and size in UTF-8 bytes."""

    card: dict[str, Any]
    json_text: str
    size: int


class CardRenderer:
    """Loads the built-in or a user template once and checks it renders valid card JSON."""

    def __init__(self, template_path: Path | None = None, *, budget: int = CARD_BUDGET) -> None:
        self._budget = budget
        self._source = str(template_path) if template_path else "the built-in card template"
        try:
            package_templates = _environment(jinja2.PackageLoader("lark_alert_middleware", "templates"))
            self._digest_template = package_templates.get_template("digest.json.j2")
            if template_path is None:
                self._template = package_templates.get_template("card.json.j2")
            else:
                loader = jinja2.FileSystemLoader(str(template_path.parent))
                self._template = _environment(loader).get_template(template_path.name)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigurationError(
                f"LARK_ALERT_TEMPLATE (template=): {self._source} line {error.lineno}: {error.message}"
            ) from None

    def check(self, view: AlertView, card: CardSettings) -> None:
        """Render a sample; raise ConfigurationError if the template cannot make a valid card."""
        variables, _ = template_variables(view, card, FULL_SIZES)
        try:
            self._render_once(variables, count_mentions(card.mentions))
        except (jinja2.TemplateError, ValueError) as error:
            raise ConfigurationError(
                f"LARK_ALERT_TEMPLATE (template=): {self._source} does not render a valid card "
                f"for a sample alert: {error}"
            ) from None

    def render(self, view: AlertView, card: CardSettings) -> RenderedCard:
        """The fullest card that fits the budget; a minimal built-in card if none does."""
        expected_mentions = count_mentions(card.mentions)
        for sizes in SHRINKING_SIZES:
            variables, cut_characters = template_variables(view, card, sizes)
            if cut_characters:
                variables["cut_note"] = f"{cut_characters:,} characters not shown"
            try:
                rendered = self._render_once(variables, expected_mentions)
            except (jinja2.TemplateError, ValueError):
                logger.exception("lark_alert_middleware: the card template failed; sending a minimal card")
                break
            if rendered.size <= self._budget:
                return rendered
        return minimal_card(view, card)

    def render_digest(self, summary: DigestSummary, card: CardSettings) -> RenderedCard:
        """The digest card; bounded by construction (at most DIGEST_LINES lines, each cut short)."""
        return self._render_once(digest_variables(summary, card), 0, self._digest_template)

    def _render_once(
        self, variables: dict[str, Any], expected_mentions: int, template: jinja2.Template | None = None
    ) -> RenderedCard:
        text = (template or self._template).render(variables)
        card = json.loads(text)
        if not isinstance(card, dict) or not ("elements" in card or "body" in card):
            raise ValueError(
                "the template must render a JSON object with 'elements' (or 'body' for schema 2.0)"
            )
        compact = json.dumps(card, ensure_ascii=False, separators=(",", ":"))
        if count_mentions(markdown_text(card)) > expected_mentions:
            raise ValueError("the card mentions someone not named in LARK_ALERT_MENTION")
        return RenderedCard(card, compact, len(compact.encode("utf-8")))


def minimal_card(view: AlertView, card: CardSettings) -> RenderedCard:
    """Title, status, route and request id only: always valid, always small, never a mention."""
    variables, _ = template_variables(view, card, SHRINKING_SIZES[-1])
    title = f"{variables['icon']} {variables['title']} · {card.service} · {card.environment}"
    if card.keyword:
        title = f"{card.keyword} {title}"
    lines = [
        f"Request id: {variables['request_id']}",
        f"Time: {variables['occurred_at']}",
        "Details were too large for a Lark card or the card template failed; see the logs.",
    ]
    content: dict[str, Any] = {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": title[:300]}, "template": variables["color"]},
        "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": "\n".join(lines)}}],
    }
    compact = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return RenderedCard(content, compact, len(compact.encode("utf-8")))
