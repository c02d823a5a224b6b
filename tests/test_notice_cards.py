"""Escalation, recovered and summary cards: whatever the errors are called, valid, small and mention-free."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_alert_middleware._card.maker import CardMaker
from lark_alert_middleware._card.markup import count_mentions, markdown_text, mention_markup
from lark_alert_middleware._card.redact import Redactor
from lark_alert_middleware._card.render import CARD_BUDGET
from lark_alert_middleware._card.view import CardSettings
from lark_alert_middleware._records import (
    DailySummary,
    ErrorEvent,
    Escalation,
    EscalationNotice,
    ExceptionText,
    Notice,
    Recovery,
    RecoveryNotice,
    SummaryLine,
)

from .test_properties import HOSTILE

SETTINGS = CardSettings("svc", "production", keyword="ALERT", mentions=mention_markup(("all",)))
NOW = 1_767_225_600.0

names = st.one_of(
    st.text(max_size=400),
    st.sampled_from(HOSTILE),
    st.lists(st.sampled_from(HOSTILE), max_size=60).map("".join),  # escaped, several times as long
    st.just("x" * 1_000_000),
    st.just("order \ud800 failed"),
)
severities = st.sampled_from(["critical", "error", "warning", "info", "resolved", "bogus"])
counts = st.integers(min_value=0, max_value=10**12)


def example(name: str, status: int) -> ErrorEvent:
    return ErrorEvent(NOW, method="GET", path=name, route=None, status_code=status, subject=name or None)


escalations = st.builds(
    lambda name, status, count, with_example: Escalation(
        name, example(name, status).slim() if with_example else None, 10, count, NOW - 240, NOW
    ),
    names,
    st.sampled_from([404, 500]),
    counts,
    st.booleans(),
)
notices: st.SearchStrategy[Notice] = st.one_of(
    st.builds(
        lambda escalated: EscalationNotice(0, tuple(escalated), (10, 100)),
        st.lists(escalations, min_size=1, max_size=30),
    ),
    st.builds(
        lambda recovered: RecoveryNotice(tuple(recovered), NOW),
        st.lists(
            st.builds(
                Recovery, st.just("k"), names, severities, st.just(NOW - 7200), st.just(NOW - 600), counts
            ),
            min_size=1,
            max_size=30,
        ),
    ),
    st.builds(
        lambda lines, total: DailySummary(
            NOW - 86400, NOW, total, len(lines) + 3, 1, tuple(lines), "Asia/Shanghai"
        ),
        st.lists(
            st.builds(SummaryLine, names, severities, counts, st.booleans(), st.booleans()), max_size=15
        ),
        counts,
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notice=notices)
def test_any_notice_makes_a_whole_valid_card_that_fits_and_mentions_only_for_escalating_errors(
    notice: Notice,
) -> None:
    made = CardMaker(Redactor(), SETTINGS).notice_card(notice)
    assert made.complete
    card = json.loads(made.rendered.json_text)
    assert made.rendered.size <= CARD_BUDGET
    assert card["header"]["title"]["content"].startswith("ALERT ")
    mentions = count_mentions(markdown_text(card))
    escalating_errors = isinstance(notice, EscalationNotice) and any(
        escalation.example is not None and escalation.example.is_error for escalation in notice.escalations
    )
    assert mentions == (1 if escalating_errors else 0)
    made.rendered.json_text.encode("utf-8")  # always postable


def test_a_secret_in_an_error_name_is_redacted_on_the_card() -> None:
    recovery = Recovery(
        "k", "GET /reset?token=abcdefghijklmnopqrstuvwxyz0123", "error", NOW - 60, NOW - 30, 3
    )
    made = CardMaker(Redactor(), SETTINGS).notice_card(RecoveryNotice((recovery,), NOW))
    assert "abcdefghijklmnopqrstuvwxyz0123" not in made.rendered.json_text


def test_a_notice_whose_lines_would_not_fit_lists_fewer_errors_and_counts_the_rest() -> None:
    markup = "*_[]()#!<>" * 40  # every character escaped: five times as long on the card
    failing = dataclasses.replace(example(markup, 500), exception_text=ExceptionText("E", markup, ""))
    escalations = tuple(Escalation(str(index), failing.slim(), 10, 12, NOW - 60, NOW) for index in range(10))
    notice = EscalationNotice(0, escalations, (10,))
    made = CardMaker(Redactor(), SETTINGS).notice_card(notice)
    assert made.complete and made.rendered.size <= CARD_BUDGET
    assert "… and 5 more errors escalating" in made.rendered.json_text
