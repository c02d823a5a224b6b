"""From a claimed alert or a digest to the card that is posted, whatever the alert holds.

Never raises: a part of the card that cannot be shown is left out and named on the card, a
template that fails for this alert gives way to the minimal card, and when even that cannot
be made a last-resort card still says that something failed. Each such failure is logged once
per cause, with its traceback, so that a hostile request can neither silence an alert nor
flood the log; the card says it is incomplete (`MadeCard.complete`), for delivery to count.

The template is loaded and checked against a sample alert once per process, off the request
path (at lifespan start-up, or on the first alert): an app's first request pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

from .._config import ConfigurationError
from .._records import (
    HTTP,
    Alert,
    DigestSummary,
    ErrorEvent,
    EscalationNotice,
    MadeCard,
    Notice,
    RecoveryNotice,
    RenderedCard,
)
from .notices import escalation_variables, recovered_variables, summary_variables
from .redact import Redactor
from .render import (
    CARD_BUDGET,
    CardRenderer,
    checked_renderer,
    last_resort_card,
    minimal_card,
    minimal_subject,
)
from .sample import NOTICE_KINDS, sample_history, sample_notice, sample_view
from .view import (
    CARD_CPU_BUDGET_SECONDS,
    NOT_SHOWN,
    AlertView,
    CardSettings,
    ExceptionView,
    build_view,
    redacted_digest,
)

logger = logging.getLogger("lark_alert_middleware")

T = TypeVar("T")
# How many errors a notice card lists, tried in order until it fits (None: as many as it does).
NOTICE_LISTS = (None, 5, 2, 1)
# Cards waiting for the worker; more means it is stuck, and the rest go out as their titles alone.
MAX_WAITING_CARDS = 100
Failures = list[tuple[str, BaseException | None]]


class CardMaker:
    """Redacts and renders the cards of one destination: its template and what its cards show."""

    def __init__(
        self,
        redactor: Redactor,
        settings: CardSettings,
        *,
        template: Path | None = None,
        budget_seconds: float = CARD_CPU_BUDGET_SECONDS,
    ) -> None:
        self._redactor = redactor
        self.settings = settings
        self._template = template
        # A user's template or scrub hook may take any time: such cards are made on a thread of their own.
        self.runs_user_code = template is not None or redactor.runs_user_code
        self._loaded: CardRenderer | None = None
        self._budget_seconds = budget_seconds
        self._reported: set[tuple[str, str]] = set()

    def name_service(self, service: str) -> None:
        """The service the cards name, once it is known (an app's title, learned at its first call)."""
        self.settings = dataclasses.replace(self.settings, service=service)

    def check(self) -> None:
        """Load the template and render the sample alert with it; ConfigurationError if it cannot make a card.

        Done once per template and settings in a process: apps built again and again (as in tests) pay once.
        """
        self._loaded = checked_renderer(self._template, lambda: sample_view(self._redactor), self.settings)

    def sample_card(self, source: str = HTTP) -> RenderedCard:
        """A source's sample alert's card, as it would be posted (for `lark-alert`)."""
        return self._renderer().render(sample_view(self._redactor, source), self.settings)

    def kind_card(self, kind: str) -> RenderedCard:
        """A sample card of `kind` (one of sample.KINDS): the sample alert's first card as new,
        back or repeated, or a sample escalation, recovered card or daily summary."""
        if kind in NOTICE_KINDS:
            return self.notice_card(sample_notice(kind)).rendered
        history, repeats = sample_history(kind)
        view = dataclasses.replace(sample_view(self._redactor), history=history, repeats=repeats)
        return self._renderer().render(view, self.settings)

    def event_card(self, event: ErrorEvent, fingerprint: str) -> RenderedCard:
        """The card of `event`, as it would be posted the first time (for `lark-alert preview`)."""
        return self._renderer().render(build_view(event, fingerprint, None, self._redactor), self.settings)

    def _renderer(self) -> CardRenderer:
        if self._loaded is None:
            self.check()
        assert self._loaded is not None
        return self._loaded

    def alert_card(self, alert: Alert) -> MadeCard:
        settings = self.settings
        event = alert.event
        view = build_view(
            event,
            alert.fingerprint,
            alert.repeats,
            self._redactor,
            budget_seconds=self._budget_seconds,
            history=alert.history,
        )
        failures: Failures = [(failure.part, failure.error) for failure in view.failures]
        try:
            rendered = self._renderer().render(view, settings)
            if rendered.template_error is not None:
                failures.append(("the card template", rendered.template_error))
        except ConfigurationError as error:  # the template cannot be used at all
            failures.append(("the card template", error))
            not_shown = ["the card template cannot be used", *_described(view)]
            rendered = self._minimal(event, view.path, not_shown, failures, view.subject)
        except Exception as error:  # in the template's variables: the minimal card needs none of them
            failures.append(("the card's details", error))
            not_shown = ["the card's details", *_described(view)]
            rendered = self._minimal(event, view.path, not_shown, failures, view.subject)
        self._report(failures)
        summary = _summary(event, view.path, view.subject, view.exception, settings)
        return MadeCard(rendered, summary, not failures)

    def overdue_card(self, alert: Alert, seconds: float) -> MadeCard:
        """For an alert whose card took longer than `seconds` to make: its title, nothing redacted."""
        reason = f"the details (making the card took longer than {seconds:g}s)"
        failures: Failures = [("the card", TimeoutError(reason))]
        rendered = self._minimal(alert.event, NOT_SHOWN, [reason], failures)
        self._report(failures)
        summary = _summary(alert.event, NOT_SHOWN, "", None, self.settings)
        return MadeCard(rendered, summary, complete=False)

    def digest_card(self, summary: DigestSummary) -> MadeCard:
        described = f"digest of {summary.total} errors"
        try:
            rendered = self._renderer().render_digest(redacted_digest(summary, self._redactor), self.settings)
        except Exception as error:
            self._report([("the digest card", error)])
            return MadeCard(self._last_resort(summary), described, complete=False)
        return MadeCard(rendered, described)

    def overdue_digest_card(self, summary: DigestSummary, seconds: float) -> MadeCard:
        self._report([("the digest card", TimeoutError(f"making it took longer than {seconds:g}s"))])
        return MadeCard(self._last_resort(summary), f"digest of {summary.total} errors", complete=False)

    def notice_card(self, notice: Notice) -> MadeCard:
        """The card of a notice (escalation, ...), listing fewer errors if it would not fit Lark's
        20 KiB otherwise; its title alone, when it cannot be made."""
        described = _described_notice(notice)
        try:
            for listed in NOTICE_LISTS:
                name, variables = _notice_variables(notice, self._redactor, self.settings, listed)
                rendered = self._renderer().render_notice(name, variables)
                if rendered.size <= CARD_BUDGET:
                    return MadeCard(rendered, described)
            raise ValueError(
                f"too large for a Lark card even with one error listed ({rendered.size:,} bytes)"
            )
        except Exception as error:
            self._report([(f"the {described} card", error)])
            return MadeCard(self._last_resort_notice(notice), described, complete=False)

    def overdue_notice_card(self, notice: Notice, seconds: float) -> MadeCard:
        described = _described_notice(notice)
        self._report([(f"the {described} card", TimeoutError(f"making it took longer than {seconds:g}s"))])
        return MadeCard(self._last_resort_notice(notice), described, complete=False)

    def _last_resort_notice(self, notice: Notice) -> RenderedCard:
        return last_resort_card(_described_notice(notice), "warning", self.settings)

    def _last_resort(self, summary: DigestSummary) -> RenderedCard:
        severity = "error" if summary.has_errors else "warning"
        return last_resort_card(f"{summary.total} more errors", severity, self.settings)

    def _minimal(
        self, event: ErrorEvent, path: str, not_shown: list[str], failures: Failures, subject: str = ""
    ) -> RenderedCard:
        try:
            return minimal_card(event, path, self.settings, not_shown, subject)
        except Exception as error:
            failures.append(("the minimal card", error))
            return last_resort_card(event.source, event.severity, self.settings)

    def _report(self, failures: Failures) -> None:
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


def _notice_variables(
    notice: Notice, redactor: Redactor, card: CardSettings, listed: int | None
) -> tuple[str, dict[str, Any]]:
    """The notice's template (one of render.NOTICE_TEMPLATES) and its variables, listing at most
    `listed` errors (None: as many as it does)."""
    if isinstance(notice, EscalationNotice):
        return "escalation", escalation_variables(notice, redactor, card, listed)
    if isinstance(notice, RecoveryNotice):
        return "recovered", recovered_variables(notice, redactor, card, listed)
    return "summary", summary_variables(notice, redactor, card, listed)


def _described_notice(notice: Notice) -> str:
    """What a notice is, in a few words, for the log and a last-resort card."""
    if isinstance(notice, EscalationNotice):
        return f"escalation of {len(notice.escalations)} errors"
    if isinstance(notice, RecoveryNotice):
        return f"recovery of {len(notice.recoveries)} errors"
    return f"daily summary of {notice.total} errors"


def _described(view: AlertView) -> list[str]:
    return [failure.describe() for failure in view.failures]


def _summary(
    event: ErrorEvent, path: str, subject: str, exception: ExceptionView | None, settings: CardSettings
) -> str:
    failure = f" · {exception.type}: {exception.message}" if exception else ""
    request_id = f" · request id {event.request_id}" if event.request_id else ""
    where = f"{settings.service} ({settings.environment})"
    return f"{minimal_subject(event, path, subject)} · {where}{request_id}{failure}"


class CardWorker(Executor):
    """One daemon thread that makes cards, so that a slow pass (a user's scrub hook, say) never
    holds the alerter's loop: Redis claims, the breaker's timeouts and other posts go on.

    A daemon, unlike `ThreadPoolExecutor`'s threads, so a pass that never returns cannot hold
    the process's exit either. One per alerter loop: a forked child makes its own.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        if self._jobs.qsize() >= MAX_WAITING_CARDS:  # stuck on a pass that never returns
            future.set_exception(RuntimeError("the card worker is stuck"))
            return future
        self._jobs.put((future, functools.partial(fn, **kwargs) if kwargs else fn, args))
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="lark-alert-cards", daemon=True)
            self._thread.start()
        return future

    def _work(self) -> None:
        while True:
            future, function, arguments = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*arguments))
            except BaseException as error:
                future.set_exception(error)
