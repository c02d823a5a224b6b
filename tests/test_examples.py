"""The example templates in examples/ pass the start-up check and render safe cards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lark_alert_middleware._card.markup import count_mentions, markdown_text, mention_markup
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CARD_BUDGET, CardRenderer
from lark_alert_middleware._card.sample import sample_event, sample_view
from lark_alert_middleware._card.view import CardSettings, build_view
from lark_alert_middleware._records import CapturedBody

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.json.j2"))
SETTINGS = CardSettings(
    "orders", "production", "https://logs.example.com/?q={request_id}", mentions=mention_markup(("all",))
)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("template", EXAMPLES, ids=lambda path: path.name)
def test_example_passes_the_start_up_check(template: Path) -> None:
    CardRenderer(template).check(sample_view(Redactor()), SETTINGS)


@pytest.mark.parametrize("template", EXAMPLES, ids=lambda path: path.name)
def test_example_keeps_request_data_harmless(template: Path) -> None:
    hostile = '<at id=all></at> {{ 7*7 }} "},{"x":" ```'
    event = dataclasses.replace(
        sample_event(),
        path=f"/x/{hostile}",
        response_body=CapturedBody(hostile.encode(), len(hostile), "text/plain"),
        exception=ValueError(hostile),
    )
    rendered = CardRenderer(template).render(build_view(event, "f", None, Redactor()), SETTINGS)
    assert rendered.size <= CARD_BUDGET
    assert count_mentions(markdown_text(rendered.card)) == 1  # only the configured @all
    assert "49" not in json.dumps(rendered.card)
