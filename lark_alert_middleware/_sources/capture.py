"""Errors reported by code itself, anywhere: `capture_exception`, `capture_message`, `report_errors`.

Inside an app with the middleware they go through its pipeline; elsewhere (a script, a queue
worker) through the process's, built from the environment on first use (or by `configure`),
whose pending alerts are delivered at interpreter exit. None of them ever raises or blocks.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar, overload

from typing_extensions import Unpack

from .._card.redact import ScrubHook
from .._config import AlertOptions
from .._pipeline.current import current_pipeline
from .._pipeline.fingerprint import FingerprintFunction, capture_fingerprint, message_fingerprint
from .._records import CAPTURE, ErrorEvent, exception_name
from .context import current_request
from .reported import mark_reported, report_new, was_reported
from .shown import MESSAGE_CHARACTERS, details_of, level_of, str_of, subject_of

logger = logging.getLogger("lark_alert_middleware")

Function = TypeVar("Function", bound=Callable[..., Any])


def capture_exception(exception: BaseException | None = None, **context: object) -> None:
    """Report `exception` (by default the one being handled); `context` is shown on the card.

    Grouped by the exception's type and where it was raised, whatever its message. An exception
    already reported (by the middleware, a log record or an earlier call) is not reported again.
    """
    if exception is None:
        exception = sys.exc_info()[1]
        if exception is None:
            return  # nothing is being handled: nothing to report
    try:
        pipeline = current_pipeline.get()
        if pipeline is None or was_reported(exception):
            return
        mark_reported(exception)
        fingerprint = capture_fingerprint(exception, raised_in(exception, sys._getframe(1)))
        report_new(pipeline, fingerprint, lambda: _exception_event(exception, fingerprint, context))
    except Exception:
        logger.exception("lark_alert_middleware: could not report an exception")


def capture_message(text: str, level: str = "error", **context: object) -> None:
    """Report a message at `level` (`critical`, `error`, `warning` or `info`); `context` is shown on the card.

    Grouped by level and text: keep what varies (an order number) in `context`, not in `text`.
    """
    try:
        pipeline = current_pipeline.get()
        if pipeline is None:
            return
        message = str_of(text)[:MESSAGE_CHARACTERS]
        shown_level = level_of(level)
        fingerprint = message_fingerprint(shown_level, message)
        report_new(
            pipeline,
            fingerprint,
            lambda: _event(
                fingerprint, context, subject=subject_of(message), message=message, level=shown_level
            ),
        )
    except Exception:
        logger.exception("lark_alert_middleware: could not report a message")


@overload
def report_errors(function: Function, /) -> Function: ...
@overload
def report_errors(function: None = None, /, **context: object) -> Callable[[Function], Function]: ...
def report_errors(
    function: Function | None = None, /, **context: object
) -> Function | Callable[[Function], Function]:
    """Decorate a function or coroutine function: an exception it raises is reported, then re-raised.

    `@report_errors` or `@report_errors(job="nightly-invoices")` (context shown on the card).
    """
    if function is None:
        return lambda decorated: _reporting(decorated, context)
    return _reporting(function, context)


def _reporting(function: Function, context: dict[str, object]) -> Function:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def reporting_coroutine(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)
            except Exception as error:
                capture_exception(error, **context)
                raise

        return reporting_coroutine  # type: ignore[return-value]

    @functools.wraps(function)
    def reporting(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as error:
            capture_exception(error, **context)
            raise

    return reporting  # type: ignore[return-value]


def configure(
    *,
    fingerprint: FingerprintFunction | None = None,
    scrub: ScrubHook | None = None,
    **options: Unpack[AlertOptions],
) -> None:
    """Set up alerting for code outside an app (a script, a worker), instead of from the environment alone.

    Takes the middleware's options; raises ConfigurationError naming what is wrong. It replaces
    any earlier configuration, an app's included, for `capture_*`, `report_errors` and log records.
    """
    current_pipeline.configure(fingerprint=fingerprint, scrub=scrub, **options)


def raised_in(exception: BaseException, caller: FrameType | None) -> str:
    """`module:function` of the innermost frame the exception passed through; the caller's if
    it was never raised."""
    frame = caller
    trace = exception.__traceback__
    if trace is not None:
        while trace.tb_next is not None:
            trace = trace.tb_next
        frame = trace.tb_frame
    if frame is None:
        return "?"
    code = frame.f_code
    module = frame.f_globals.get("__name__", "?")
    return f"{module}:{getattr(code, 'co_qualname', code.co_name)}"


def _exception_event(exception: BaseException, fingerprint: str, context: dict[str, object]) -> ErrorEvent:
    subject = subject_of(f"{exception_name(exception)}: {str_of(exception)}")
    return _event(fingerprint, context, exception=exception, subject=subject)


def _event(
    fingerprint: str,
    context: dict[str, object],
    *,
    subject: str,
    exception: BaseException | None = None,
    message: str | None = None,
    level: str = "error",
) -> ErrorEvent:
    request = current_request()
    return ErrorEvent(
        timestamp=time.time(),
        method=request.method,
        path=request.path,
        route=request.route,
        request_id=request.request_id,
        trace_id=request.trace_id,
        exception=exception,
        source=CAPTURE,
        subject=subject,
        fingerprint=fingerprint,
        level=level,
        message=message,
        details=details_of(context.items()),
    )
