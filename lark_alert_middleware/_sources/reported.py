"""What the sources other than the middleware share when they report: a repeat costs a lookup,
and an exception one source reported is not reported again by another.

The middleware reports an exception that escapes a request, and then the server logs it
("Exception in ASGI application"); code may log an exception that `capture_exception` reported.
The mark is a key in the exception's own `__dict__` (exceptions cannot be referred to weakly),
so it lives and dies with the exception and costs a dictionary lookup to read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from .._pipeline.pipeline import Pipeline
from .._records import ErrorEvent

_MARK = "__lark_alert_reported__"


def report_new(pipeline: Pipeline, fingerprint: str, make_event: Callable[[], ErrorEvent]) -> None:
    """Count a repeat of `fingerprint`, or make its event and hand it over. The event is made only
    for a new error, unless a custom fingerprint function needs it to decide."""
    try:
        if pipeline.custom_fingerprint is not None:
            pipeline.report(make_event())
        elif not pipeline.is_reported(fingerprint):
            pipeline.submit(fingerprint, make_event())
    except Exception:
        pipeline.count_lost()
        raise


def mark_reported(exception: BaseException) -> None:
    """Remember that `exception` was reported (or counted as a repeat) by a source."""
    # Into the dictionary, not setattr: a frozen dataclass or attrs exception refuses that. An
    # exception without a usable __dict__ may be reported twice, never lost.
    with contextlib.suppress(Exception):
        exception.__dict__[_MARK] = True


def was_reported(exception: BaseException) -> bool:
    """Whether a source already reported `exception`."""
    try:
        return _MARK in exception.__dict__
    except Exception:
        return False
