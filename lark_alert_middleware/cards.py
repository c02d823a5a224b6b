"""From a claimed alert or a digest to the card that is posted, whatever the alert holds.

Never raises: a part of the card that cannot be shown is left out and named on the card, a
template that fails for this alert gives way to the minimal card, and when even that cannot
be made a last-resort card still says that something failed. Each such failure is counted
(`failed`) and logged once per cause, with its traceback, so that a hostile request can
neither silence an alert nor flood the log.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar

from .card import CardRenderer, RenderedCard, last_resort_card, minimal_card
from .digest import DigestSummary
from .event import ErrorEvent
from .redact import Redactor
from .stats import Counters
from .view import (
    CARD_CPU_BUDGET_SECONDS,
    NOT_SHOWN,
    AlertView,
    CardSettings,
    ExceptionView,
    build_view,
    redacted_digest,
)

if TYPE_CHECKING:
    from .delivery import Alert

logger = logging.getLogger("lark_alert_middleware")

T = TypeVar("T")
# Cards waiting for the worker; more means it is stuck, and the rest go out as their titles alone.
MAX_WAITING_CARDS = 100


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
        view = build_view(
            event, alert.fingerprint, alert.repeats, self._redactor, budget_seconds=self._budget_seconds
        )
        failures: list[tuple[str, BaseException | None]] = [
            (failure.part, failure.error) for failure in view.failures
        ]
        try:
            rendered = self._renderer.render(view, settings)
            if rendered.template_error is not None:
                failures.append(("the card template", rendered.template_error))
        except Exception as error:  # in the template's variables: the minimal card needs none of them
            failures.append(("the card's details", error))
            rendered = self._minimal(alert, view.path, ["the card's details", *_described(view)], failures)
        if failures:
            self._failed(failures)
        return rendered, _summary(event, view.path, view.exception, settings)

    def overdue_card(self, alert: Alert, seconds: float) -> tuple[RenderedCard, str]:
        """For an alert whose card took longer than `seconds` to make: its title, nothing redacted."""
        reason = f"the details (making the card took longer than {seconds:g}s)"
        failures: list[tuple[str, BaseException | None]] = [("the card", TimeoutError(reason))]
        rendered = self._minimal(alert, NOT_SHOWN, [reason], failures)
        self._failed(failures)
        return rendered, _summary(alert.event, NOT_SHOWN, None, self._card_settings())

    def overdue_digest_card(self, summary: DigestSummary, seconds: float) -> tuple[RenderedCard, str]:
        error = TimeoutError(f"making the digest card took longer than {seconds:g}s")
        self._failed([("the digest card", error)])
        settings = self._card_settings()
        card = last_resort_card(f"{summary.total} more errors", summary.has_errors, settings)
        return card, f"digest of {summary.total} errors"

    def _minimal(
        self,
        alert: Alert,
        path: str,
        not_shown: list[str],
        failures: list[tuple[str, BaseException | None]],
    ) -> RenderedCard:
        settings = self._card_settings()
        try:
            return minimal_card(alert.event, path, settings, not_shown)
        except Exception as error:
            failures.append(("the minimal card", error))
            return last_resort_card(f"{alert.event.status_code}", alert.event.is_error, settings)

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


def _described(view: AlertView) -> list[str]:
    return [failure.describe() for failure in view.failures]


def _summary(event: ErrorEvent, path: str, exception: ExceptionView | None, settings: CardSettings) -> str:
    failure = f" · {exception.type}: {exception.message}" if exception else ""
    return (
        f"{event.status_code} {event.method} {event.route or path} · "
        f"{settings.service} ({settings.environment}) · request id {event.request_id}{failure}"
    )


class CardWorker(Executor):
    """One daemon thread that makes cards, so that a slow pass (a user's scrub hook, say) never
    holds the alerter's loop: Redis claims, the breaker's timeouts and other posts go on.

    A daemon, unlike `ThreadPoolExecutor`'s threads, so a pass that never returns cannot hold
    the process's exit either. A worker lost in a fork is started again on first use.
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
        thread = self._thread
        if thread is None or not thread.is_alive():
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
