"""Failures after the response was sent: a background task, or a stream that broke after a 2xx start.

The status was fine, so the card must not say it failed: it says what failed and when
(`RuntimeError in background task after 200 POST /export`), and groups by method, route and
exception type, not by the status.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import replace

from starlette.types import Message

from .._pipeline.fingerprint import after_response_fingerprint
from .._records import BACKGROUND, NO_BODY, ErrorEvent

# How much of a path a subject keeps, for a request that matched no route: the client chose it.
SUBJECT_PATH_CHARACTERS = 200


class Moment(enum.Enum):
    """When, after the response started, an exception escaped the app."""

    BACKGROUND_TASK = "in background task"  # the whole response was sent
    STREAMING = "while streaming"  # a 2xx start (or another status that does not alert) was sent


def moment_of(status: int, last_sent: Message | None, alerting_statuses: Collection[int]) -> Moment | None:
    """When an exception escaped, if it is an after-response failure; None for a failing request.

    A failing request is one that sent nothing yet, or whose alerting response was cut short:
    those keep the HTTP card (status and exception).
    """
    if not status:
        return None
    if last_sent is not None and _ends_response(last_sent):
        return Moment.BACKGROUND_TASK
    if status in alerting_statuses:
        return None
    return Moment.STREAMING


def _ends_response(message: Message) -> bool:
    kind: str = message["type"]
    if kind == "http.response.body" or kind == "http.response.zerocopysend":
        return not message.get("more_body", False)
    if kind == "http.response.trailers":
        return not message.get("more_trailers", False)
    return kind == "http.response.pathsend"  # a whole file in one message


def after_response_event(event: ErrorEvent, moment: Moment) -> ErrorEvent:
    """The request's event as a failure after its response: it says what failed and when."""
    where = event.route or event.path[:SUBJECT_PATH_CHARACTERS]
    return replace(
        event,
        source=BACKGROUND,
        subject=f"{event.exception_type} {moment.value} after {event.status_code} {event.method} {where}",
        fingerprint=after_response_fingerprint(event.method, event.route, event.exception),
        response_body=NO_BODY,
    )
