"""From a claimed alert or a digest to the card that is posted, whatever the alert holds.

Never raises: a part of the card that cannot be shown is left out and named on the card, a
template that fails for this alert gives way to the minimal card, and when even that cannot
be made a last-resort card still says that something failed. Each such failure is counted
(`failed`) and logged once per cause, with its traceback, so that a hostile request can
neither silence an alert nor flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .card import CardRenderer, RenderedCard, last_resort_card
from .digest import DigestSummary
from .redact import Redactor
from .stats import Counters
from .view import CARD_CPU_BUDGET_SECONDS, AlertView, CardSettings, build_view, redacted_digest

if TYPE_CHECKING:
    from .delivery import Alert

logger = logging.getLogger("lark_alert_middleware")


class CardMaker:
    """Redacts and renders; `card_settings()` says what every card shows of the service."""

    def __init__(
        self,
        renderer: CardRenderer,
        redactor: Redactor,
        card_settings: Callable[[], CardSettings],
        counters: Counters,
        *,
        budget_seconds: float = CARD_CPU_BUDGET_SECONDS,
    ) -> None:
        self._renderer = renderer
        self._redactor = redactor
        self._card_settings = card_settings
        self._counters = counters
        self._budget_seconds = budget_seconds
        self._reported: set[tuple[str, str]] = set()

    def alert_card(self, alert: Alert) -> tuple[RenderedCard, str]:
        """The card for `alert`, and a one-line summary of it for the log."""
        settings = self._card_settings()
        event = alert.event
        try:
            view = build_view(
                event, alert.fingerprint, alert.repeats, self._redactor, budget_seconds=self._budget_seconds
            )
            rendered = self._renderer.render(view, settings)
            failures: list[tuple[str, BaseException | None]] = [
                (failure.part, failure.error) for failure in view.failures
            ]
            if rendered.template_error is not None:
                failures.append(("the card template", rendered.template_error))
            summary = _summary(view, settings)
        except Exception as error:
            failures = [("the card", error)]
            rendered = last_resort_card(f"{event.status_code}", event.is_error, settings)
            summary = f"{event.status_code} · {settings.service} ({settings.environment}) · the card failed"
        if failures:
            self._failed(failures)
        return rendered, summary

    def digest_card(self, summary: DigestSummary) -> tuple[RenderedCard, str]:
        settings = self._card_settings()
        described = f"digest of {summary.total} errors"
        try:
            return self._renderer.render_digest(redacted_digest(summary, self._redactor), settings), described
        except Exception as error:
            self._failed([("the digest card", error)])
            return last_resort_card(f"{summary.total} more errors", summary.has_errors, settings), described

    def _failed(self, failures: list[tuple[str, BaseException | None]]) -> None:
        self._counters.add("failed")
        for part, error in failures:
            cause = (part, "time budget" if error is None else type(error).__name__)
            if cause in self._reported:
                logger.debug("lark_alert_middleware: %s not shown on a card again (%s)", *cause)
                continue
            self._reported.add(cause)
            if error is None:
                logger.error(
                    "lark_alert_middleware: %s not shown on a card: building the card took more than "
                    "%.2fs of CPU time; the card was sent without it",
                    part,
                    self._budget_seconds,
                )
            else:
                logger.error(
                    "lark_alert_middleware: %s not shown on a card: %s; the card was sent without it "
                    "(logged once per cause)",
                    part,
                    type(error).__name__,
                    exc_info=error,
                )


def _summary(view: AlertView, settings: CardSettings) -> str:
    event = view.event
    failure = f" · {view.exception.type}: {view.exception.message}" if view.exception else ""
    return (
        f"{event.status_code} {event.method} {event.route or view.path} · "
        f"{settings.service} ({settings.environment}) · request id {event.request_id}{failure}"
    )
