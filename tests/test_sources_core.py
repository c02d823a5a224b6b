"""Every source's error makes a card that reads well for it, through the same card machinery.

Whatever a source puts in an event (a subject, a message, details, labels, links), it is
redacted, escaped and cut like request data, and the card fits Lark's limit.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_alert_middleware import default_fingerprint
from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CARD_BUDGET, CardRenderer
from lark_alert_middleware._card.sample import sample_events, sample_view
from lark_alert_middleware._card.view import CardSettings
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._lark.webhook import message_body
from lark_alert_middleware._pipeline.build import build_pipeline
from lark_alert_middleware._records import BACKGROUND, LOG, SOURCES, Alert, ErrorEvent, Repeats
from lark_alert_middleware.testing import LarkReceiver

from .conftest import card_full_title, shown_text

SETTINGS = CardSettings("orders", "production", "https://logs.example.com/?rid={request_id}")
HOSTILE = '<at id=all></at> {{ 7*7 }} {% raw %} "\\u0000\n```\n**bold** [x](https://evil.example) \udcff'


def card_of(event: ErrorEvent, fingerprint: str = "f") -> dict[str, object]:
    made = CardMaker(Redactor(), SETTINGS).alert_card(Alert(fingerprint, event, Repeats(0, None)))
    assert made.rendered.size <= CARD_BUDGET
    return made.rendered.card


@pytest.mark.parametrize("source", SOURCES)
def test_every_sources_sample_renders_a_card_titled_by_what_failed(source: str) -> None:
    event, fingerprint = sample_events()[source]
    card = CardRenderer().render(sample_view(Redactor(), source), SETTINGS).card
    title = card_full_title(card)
    assert title.startswith("🔴 ")
    assert title.endswith(" · orders · production")
    if source != "http":
        assert event.subject is not None and event.subject[:20] in title
        assert "Status" not in shown_text(card)  # no HTTP status where there was none
    assert default_fingerprint(event) == fingerprint


def test_a_log_record_card_shows_its_logger_message_and_extra_fields() -> None:
    event, _ = sample_events()[LOG]
    text = shown_text(card_of(event))
    for fact in (
        "log record · shop.payments",
        "payment provider timed out, order 42 left unpaid",
        "acme-pay",
    ):
        assert fact in text


@pytest.mark.parametrize(
    ("level", "colour"), [("warning", "orange"), ("info", "blue"), ("resolved", "green")]
)
def test_a_sources_level_gives_the_cards_colour(level: str, colour: str) -> None:
    event, _ = sample_events()["relay"]
    card = card_of(dataclasses.replace(event, level=level))
    assert card["header"]["template"] == colour  # type: ignore[index]


def test_secrets_in_details_labels_message_and_links_are_redacted() -> None:
    event = ErrorEvent(
        timestamp=0.0,
        source=LOG,
        level="error",
        subject="login failed for token=tok_subject_secret",
        message="retrying with password=hunter2-message",
        details=(("api_key", "key-in-details"), ("note", "Bearer abcdefghijklmnop-bearer")),
        labels=(("password", "label-secret"),),
        links=(("Dashboard", "https://user:pw-in-link@grafana.example/d?token=link-token"),),
    )
    text = json.dumps(card_of(event), ensure_ascii=False)
    for secret in ("tok_subject_secret", "hunter2-message", "key-in-details", "label-secret"):
        assert secret not in text
    assert "pw-in-link" not in text and "link-token" not in text
    assert "https://user:***@grafana.example/d?token=***" in text


def test_only_http_links_become_buttons() -> None:
    event = ErrorEvent(
        timestamp=0.0,
        source=LOG,
        subject="x",
        links=(("Run", "javascript:alert(1)"), ("Docs", "https://docs.example/runbook")),
    )
    text = json.dumps(card_of(event), ensure_ascii=False)
    assert "javascript" not in text
    assert "https://docs.example/runbook" in text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(max_size=2000),
        st.just(HOSTILE),
        st.integers(0, 300_000).map(lambda size: "x" * size),
    ),
    source=st.sampled_from([source for source in SOURCES if source != "http"]),
)
def test_whatever_a_source_puts_in_an_event_makes_a_postable_card_that_pings_nobody(
    text: str, source: str
) -> None:
    event = ErrorEvent(
        timestamp=0.0,
        source=source,
        level="error",
        subject=text,
        message=text,
        logger_name=text[:100],
        details=((text[:50] or "name", text),) * 3,
        labels=(("alertname", text),),
        links=(("Open", "https://example.com/" + text[:100]),),
    )
    made = CardMaker(Redactor(), SETTINGS).alert_card(Alert(text or "f", event, Repeats(2, None)))
    posted = message_body(made.rendered.json_text, None, 1_700_000_000)
    assert len(posted) <= 20 * 1024
    card = json.loads(posted)["card"]
    assert count_mentions(markdown_text(card)) == 0  # plain_text (the title) mentions nobody
    assert card["header"]["title"]["content"].startswith("🔴 ")
    if text == HOSTILE:
        assert "{{ 7*7 }}" in card["header"]["title"]["content"]


def test_report_deduplicates_and_delivers_an_error_of_any_source() -> None:
    with LarkReceiver() as lark:
        pipeline = build_pipeline(load_settings(webhook_url=lark.url, service="jobs"))
        event, _ = sample_events()[LOG]
        for _ in range(5):
            pipeline.report(event)
        assert pipeline.flush(10)
        [card] = lark.wait_for_cards(1)
        assert pipeline.stats().raised == 5
        assert pipeline.stats().deduplicated == 4
        assert "payment provider timed out" in card_full_title(card)


def test_report_groups_errors_of_a_request_by_the_custom_fingerprint_function() -> None:
    with LarkReceiver() as lark:
        pipeline = build_pipeline(
            load_settings(webhook_url=lark.url, service="jobs"), fingerprint=lambda event: "one group"
        )
        event, _ = sample_events()[BACKGROUND]
        pipeline.report(event)
        pipeline.report(dataclasses.replace(event, route="/another", subject="another"))
        assert pipeline.flush(10)
        assert len(lark.wait_for_cards(1)) == 1
        assert pipeline.stats().deduplicated == 1


def test_a_function_written_for_requests_cannot_group_log_records_into_one() -> None:
    with LarkReceiver() as lark:
        pipeline = build_pipeline(
            load_settings(webhook_url=lark.url, service="jobs"),
            fingerprint=lambda event: f"{event.method} {event.route} {event.status_code}",
        )
        event, _ = sample_events()[LOG]
        pipeline.report(event)
        pipeline.report(dataclasses.replace(event, fingerprint="LOG shop ERROR another template"))
        assert pipeline.flush(10)
        assert len(lark.wait_for_cards(2)) == 2
        assert pipeline.stats().deduplicated == 0
