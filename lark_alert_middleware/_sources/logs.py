"""Log records as a source of errors: `LarkAlertHandler`, and the middleware's use of it.

A record at or above the handler's level goes through the same pipeline as failing requests.
Records group by logger, level and the *unformatted* message (`order %s left unpaid` with a
thousand orders is one error), plus the exception type. A repeat costs a fingerprint and a
dictionary lookup; the event (message, `extra` fields, the request) is built only for a new one.

Never captured: the package's own records, every record made on the package's threads (httpx,
httpcore, redis, asyncio while delivering; a scrub hook while a card is made), records made
while a record is being captured, and records of an exception another source already reported
(the server's "Exception in ASGI application" for one the middleware alerted). So a failing
webhook cannot feed on itself.
"""

from __future__ import annotations

import logging
import threading

from .._pipeline.current import current_pipeline
from .._pipeline.fingerprint import log_fingerprint
from .._pipeline.pipeline import Pipeline
from .._records import LOG, ErrorEvent, as_text
from .context import current_request, tracking
from .reported import mark_reported, report_new, was_reported
from .shown import MESSAGE_CHARACTERS, details_of, level_of, str_of, subject_of

OWN_LOGGER = "lark_alert_middleware"
PACKAGE_THREADS = "lark-alert-"
logger = logging.getLogger(OWN_LOGGER)

# What every record has: anything else on a record was given as `extra` (or added by a filter).
STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",  # set by Formatter.format
    "asctime",
    "taskName",  # Python 3.12
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class _Capturing(threading.local):
    """Whether this thread is capturing a record: one made meanwhile (a `__repr__` that logs) is not."""

    busy = False


class LarkAlertHandler(logging.Handler):
    """A logging handler that sends records at or above `level` to the Lark group as alerts.

    Deduplicated with every other error of the process; `pipeline` is a middleware's
    (`middleware.alerter`), by default the process's (an app's middleware's, or one built from
    the environment). `logging.getLogger().addHandler(LarkAlertHandler())` captures every ERROR.
    """

    def __init__(self, level: int | str = logging.ERROR, *, pipeline: Pipeline | None = None) -> None:
        super().__init__(level)
        self._pipeline = pipeline
        self._capturing = _Capturing()
        tracking.on = True  # from now on, middlewares say which request a record was logged in

    def emit(self, record: logging.LogRecord) -> None:
        capturing = self._capturing
        if capturing.busy:
            return
        capturing.busy = True
        try:
            self._capture(record)
        except Exception:
            logger.exception("lark_alert_middleware: could not capture a log record")
        finally:
            capturing.busy = False

    def _capture(self, record: logging.LogRecord) -> None:
        name = record.name
        if name == OWN_LOGGER or name.startswith("lark_alert_middleware.") or on_a_package_thread(record):
            return
        exc_info = record.exc_info
        exception = exc_info[1] if exc_info and isinstance(exc_info[1], BaseException) else None
        if exception is not None and was_reported(exception):
            return
        pipeline = self._pipeline or current_pipeline.get()
        if pipeline is None:
            return
        fingerprint = log_fingerprint(name, record.levelname, str_of(record.msg), exception)
        if exception is not None:
            mark_reported(exception)
        report_new(pipeline, fingerprint, lambda: log_event(record, exception, fingerprint))

    def __repr__(self) -> str:
        return f"<LarkAlertHandler ({logging.getLevelName(self.level)})>"


def on_a_package_thread(record: logging.LogRecord) -> bool:
    """Whether the record was made on one of the package's threads, which only deliver alerts:
    the alerter loop, its name lookups and the card maker are all named `lark-alert-…`."""
    thread_name = record.threadName  # None when logging.logThreads is off
    if thread_name is None:
        thread_name = threading.current_thread().name
    return thread_name.startswith(PACKAGE_THREADS)


def name_of(record: logging.LogRecord) -> str:
    return as_text(str_of(record.name)[:200])


def log_event(record: logging.LogRecord, exception: BaseException | None, fingerprint: str) -> ErrorEvent:
    """The event of a record: its message, `extra` fields and exception, and the request it was logged in."""
    message = formatted_message(record)
    request = current_request()
    return ErrorEvent(
        timestamp=record.created,
        method=request.method,
        path=request.path,
        route=request.route,
        request_id=request.request_id,
        trace_id=request.trace_id,
        exception=exception,
        source=LOG,
        subject=subject_of(message),
        fingerprint=fingerprint,
        level=level_of(record.levelno),
        message=message,
        logger_name=name_of(record),
        details=details_of(
            (name, value) for name, value in vars(record).items() if name not in STANDARD_ATTRIBUTES
        ),
    )


def formatted_message(record: logging.LogRecord) -> str:
    """`record.getMessage()` (the message with its arguments), or the message alone when they
    do not fit it."""
    try:
        message = record.getMessage()
    except Exception as error:
        message = f"{str_of(record.msg)} (its arguments could not be formatted: {type(error).__name__})"
    return as_text(str_of(message)[:MESSAGE_CHARACTERS])


class LogCapture:
    """LARK_ALERT_CAPTURE_LOGS: the middleware's handler on the root logger while its app runs.

    Attached at lifespan start-up (or at the first request, without lifespan) and removed at
    shutdown, never at construction: building an app must not change the process's logging.
    """

    def __init__(self, pipeline: Pipeline, level: int) -> None:
        self.handler = LarkAlertHandler(level, pipeline=pipeline)
        self.never_attached = True  # then the first request attaches it: the app has no lifespan

    def attach(self) -> None:
        self.never_attached = False
        logging.getLogger().addHandler(self.handler)  # once: logging ignores a handler added again

    def detach(self) -> None:
        logging.getLogger().removeHandler(self.handler)
