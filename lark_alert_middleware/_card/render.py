"""Render an alert into a Lark interactive card with a Jinja2 template, and fit it into 20 KiB.

JSON is read and written with functions bound at import (here and in `markup`): patching
`json.dumps` in an app's own test cannot see this package's calls.

Every `{{ ... }}` in a card template stands inside a JSON string. Its value is escaped for
that string and, unless a filter says otherwise, for Lark markdown too. Request data is
only ever a value passed to the template, never template source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from json import dumps as json_dumps
from json import loads as json_loads
from pathlib import Path
from typing import Any

import jinja2

from .._config import ConfigurationError
from .._records import ERROR_LEVELS, DigestSummary, ErrorEvent, RenderedCard
from .excerpt import printable
from .markup import (
    LarkText,
    count_mentions,
    escape_code,
    escape_json_string,
    escape_markdown,
    markdown_text,
)
from .view import (
    FULL_SIZES,
    NOT_SHOWN,
    SEVERITY_COLOURS,
    SEVERITY_ICONS,
    SOURCE_NAMES,
    AlertView,
    CardSettings,
    Sizes,
    digest_variables,
    template_variables,
)

LARK_BODY_LIMIT = 20 * 1024
# The signed envelope around the card: {"timestamp":"…","sign":"…","msg_type":"interactive","card":…}
ENVELOPE_BYTES = 128
CARD_BUDGET = LARK_BODY_LIMIT - ENVELOPE_BYTES
# How much of a subject a card without a template shows.
SUBJECT_CHARACTERS = 300
# The built-in templates of cards that are not about one new error (`<name>.json.j2`).
NOTICE_TEMPLATES = ("escalation", "recovered", "summary")

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
    # Bound at import, like every JSON call here: an app's test patching `json.dumps` sees none of ours.
    environment.policies["json.dumps_function"] = json_dumps
    return environment


_loaded: dict[tuple[str, int], CardRenderer] = {}
_checked: set[tuple[tuple[str, int], CardSettings]] = set()
_templates_lock = threading.Lock()


def checked_renderer(
    template: Path | None, sample: Callable[[], AlertView], settings: CardSettings
) -> CardRenderer:
    """The renderer of `template`, loaded once per process and checked once per settings against
    the sample alert; ConfigurationError when it cannot make a card."""
    key = ("", 0) if template is None else (str(template), _modified_at(template))
    with _templates_lock:
        renderer = _loaded.get(key)
        if renderer is None:
            renderer = _loaded[key] = CardRenderer(template)
        if (key, settings) not in _checked:
            renderer.check(sample(), settings)
            _checked.add((key, settings))
    return renderer


def _modified_at(template: Path) -> int:
    try:
        return template.stat().st_mtime_ns
    except OSError:
        return 0  # CardRenderer says what is wrong with it


class CardRenderer:
    """Loads the built-in or a user template once and checks it renders valid card JSON."""

    def __init__(self, template_path: Path | None = None, *, budget: int = CARD_BUDGET) -> None:
        self._budget = budget
        self._source = str(template_path) if template_path else "the built-in card template"
        try:
            package_templates = _environment(jinja2.PackageLoader("lark_alert_middleware._card", "templates"))
            self._digest_template = package_templates.get_template("digest.json.j2")
            self._notice_templates = {
                name: package_templates.get_template(f"{name}.json.j2") for name in NOTICE_TEMPLATES
            }
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
        """The fullest card that fits the budget; the minimal card if none does or the template fails.

        Never raises for the template's sake: its error is kept in `template_error`. Whatever the
        template, a card whose view left parts out says which, in a note of its own.
        """
        expected_mentions = count_mentions(card.mentions) if view.event.is_error else 0
        not_shown = [failure.describe() for failure in view.failures]
        for sizes in SHRINKING_SIZES:
            variables, cut_characters = template_variables(view, card, sizes)
            if cut_characters:
                variables["cut_note"] = f"{cut_characters:,} characters not shown"
            try:
                rendered = self._render_once(variables, expected_mentions, not_shown=not_shown)
            except Exception as error:  # a template may fail in any way for some data
                not_shown = ["the card template failed", *not_shown]
                failed = minimal_card(view.event, view.path, card, not_shown, view.subject)
                return replace(failed, template_error=error)
            if rendered.size <= self._budget:
                return rendered
        too_large = ["the details were too large for a Lark card"]
        return minimal_card(view.event, view.path, card, too_large, view.subject)

    def render_digest(self, summary: DigestSummary, card: CardSettings) -> RenderedCard:
        """The digest card; bounded by construction (at most DIGEST_LINES lines, each cut short)."""
        expected_mentions = count_mentions(card.mentions) if summary.has_errors else 0
        return self._render_once(digest_variables(summary, card), expected_mentions, self._digest_template)

    def render_notice(self, name: str, variables: dict[str, Any]) -> RenderedCard:
        """A notice card (one of NOTICE_TEMPLATES); bounded by construction, like the digest."""
        expected_mentions = count_mentions(variables["mentions"])
        return self._render_once(variables, expected_mentions, self._notice_templates[name])

    def _render_once(
        self,
        variables: dict[str, Any],
        expected_mentions: int,
        template: jinja2.Template | None = None,
        *,
        not_shown: list[str] | None = None,
    ) -> RenderedCard:
        text = (template or self._template).render(variables)
        card = json_loads(text)
        elements = _elements(card)
        if elements is None:
            raise ValueError(
                "the template must render a JSON object with 'elements' (or 'body' for schema 2.0)"
            )
        if count_mentions(markdown_text(card)) > expected_mentions:
            raise ValueError("the card mentions someone not named in LARK_ALERT_MENTION")
        if not_shown:
            note = {"tag": "markdown", "content": f"**Not shown**: {escape_markdown('; '.join(not_shown))}"}
            last_is_note = (
                bool(elements) and isinstance(elements[-1], dict) and elements[-1].get("tag") == "note"
            )
            elements.insert(len(elements) - 1 if last_is_note else len(elements), note)
        return rendered_card(card)


def _elements(card: Any) -> list[Any] | None:
    """The card's list of elements (card JSON 1.0), or its body's (2.0); None if it has neither."""
    if not isinstance(card, dict):
        return None
    elements = card.get("elements")
    if elements is None and isinstance(card.get("body"), dict):
        elements = card["body"].get("elements")
    return elements if isinstance(elements, list) else None


def rendered_card(card: dict[str, Any]) -> RenderedCard:
    """A card as it is posted: compact JSON, always valid UTF-8 (a lone surrogate becomes `?`)."""
    compact = json_dumps(card, ensure_ascii=False, separators=(",", ":"))
    try:
        encoded = compact.encode("utf-8")
    except UnicodeEncodeError:
        encoded = compact.encode("utf-8", "replace")
        compact = encoded.decode("utf-8")
    return RenderedCard(card, compact, len(encoded))


def minimal_card(
    event: ErrorEvent, path: str, card: CardSettings, not_shown: list[str], subject: str = ""
) -> RenderedCard:
    """Title, status, route and request id, the configured mention, and what was not shown: always valid.

    `path` and `subject` are redacted (the path is shown only when no route matched), never raw.
    """
    icon = SEVERITY_ICONS[event.severity]
    title = f"{icon} {minimal_subject(event, path, subject)} · {card.service} · {card.environment}"
    occurred = datetime.fromtimestamp(event.timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"Request id: {printable(event.request_id)[:100]}" if event.request_id else "",
        f"Time: {occurred}",
        f"Not shown: {'; '.join(not_shown)}; see the logs.",
    ]
    return _plain_card(title, event.severity, "\n".join(line for line in lines if line), card)


def minimal_subject(event: ErrorEvent, path: str, subject: str = "") -> str:
    """What failed, in a few printable words, without a template.

    The redacted `subject` of a source other than a failing response, or, when it could not be
    made, the source and the exception type; else status, method and route (or redacted `path`).
    """
    if event.subject is not None:
        if subject and subject != NOT_SHOWN:
            return subject[:SUBJECT_CHARACTERS]
        return f"{event.exception_type or 'error'} ({SOURCE_NAMES.get(event.source, event.source)})"
    return f"{event.status_code} {printable(event.method)[:20]} {printable(event.route or path)[:200]}"


def _plain_card(title: str, severity: str, text: str, card: CardSettings) -> RenderedCard:
    """A card of plain text, mentioning whom the configuration says for an error."""
    if card.keyword:
        title = f"{card.keyword} {title}"
    elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "plain_text", "content": text}}]
    if severity in ERROR_LEVELS and card.mentions:
        elements.insert(0, {"tag": "markdown", "content": str(card.mentions)})
    return rendered_card(
        {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": title[:300]},
                "template": SEVERITY_COLOURS[severity],
            },
            "elements": elements,
        }
    )


def last_resort_card(subject: str, severity: str, card: CardSettings) -> RenderedCard:
    """When even the minimal card could not be made: what it was about, in a few words, and the service."""
    title = f"{SEVERITY_ICONS[severity]} {subject} · {card.service} · {card.environment}"
    text = "An error was reported, but its card could not be made; see the logs."
    return _plain_card(title, severity, text, card)
