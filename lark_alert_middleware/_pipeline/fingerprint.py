"""What makes two errors "the same": the rule that groups repeats into one alert."""

from __future__ import annotations

from collections.abc import Callable

from .._records import ErrorEvent
from .._records import exception_name as exception_name  # for fingerprint functions: one import

FingerprintFunction = Callable[[ErrorEvent], str]

UNMATCHED_ROUTE = "<unmatched>"
# RFC 9110's methods and PATCH. Any token is a valid method, so a client could mint a new
# error with each request; the others are grouped as one, unless the matched route takes them.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "OTHER"


def grouped_method(method: str, route: object) -> str:
    """The method as errors are grouped and shown: standard, declared by the matched route, or OTHER."""
    if method in STANDARD_METHODS:
        return method
    declared = getattr(route, "methods", None)
    if isinstance(declared, (set, frozenset, list, tuple)) and method in declared:
        return method  # the app's own, e.g. PURGE
    return OTHER_METHOD


def fingerprint_of(method: str, route: str | None, status_code: int, exception: BaseException | None) -> str:
    """Method, route template, status and exception type: `/items/1` and `/items/2` are one error.

    Requests that matched no route share the template `<unmatched>`, so a scanner probing
    a thousand paths raises one 404 alert, not a thousand.
    """
    name = exception_name(exception)
    route_template = route or UNMATCHED_ROUTE
    if name:
        return f"{method} {route_template} {status_code} {name}"
    return f"{method} {route_template} {status_code}"


def default_fingerprint(event: ErrorEvent) -> str:
    """The default rule applied to a captured event: its source's grouping, or for a failing
    response method, route template, status and exception type."""
    if event.fingerprint is not None:
        return event.fingerprint
    return fingerprint_of(event.method, event.route, event.status_code, event.exception)


# How much of a message template a fingerprint keeps: templates are the code's, but may be long.
TEMPLATE_CHARACTERS = 300


def after_response_fingerprint(method: str, route: str | None, exception: BaseException | None) -> str:
    """A failure after the response was sent (a background task): not the status, which was fine."""
    return f"{method} {route or UNMATCHED_ROUTE} after response {exception_name(exception)}".rstrip()


def websocket_fingerprint(route: str | None, exception: BaseException | None) -> str:
    return f"WEBSOCKET {route or UNMATCHED_ROUTE} {exception_name(exception)}".rstrip()


def log_fingerprint(logger_name: str, level: str, template: str, exception: BaseException | None) -> str:
    """A log record by its logger, level and unformatted message: `order %s left unpaid` is one error."""
    name = exception_name(exception)
    return f"LOG {logger_name} {level} {template[:TEMPLATE_CHARACTERS]}{' ' + name if name else ''}"


def startup_fingerprint(exception: BaseException | None) -> str:
    return f"STARTUP {exception_name(exception)}".rstrip()


def capture_fingerprint(exception: BaseException | None, raised_in: str) -> str:
    """An exception code reported: its type and where it was raised (`module:function`), not its
    message, so that the same bug groups whatever values its message holds."""
    return f"CAPTURE {exception_name(exception)} {raised_in}"


def message_fingerprint(level: str, text: str) -> str:
    """A message code reported: its level and text."""
    return f"MESSAGE {level} {text[:TEMPLATE_CHARACTERS]}"


def relay_fingerprint(identity: str, resolved: bool, episode: str = "") -> str:
    """A relayed alert by its tool and identity, and the episode (when it started firing) when the
    tool says: an alert that resolves and fires again is a new error, not a repeat the window
    swallows. Its resolution is an error of its own, so that the green card is not deduplicated
    away by the red one's window. Re-sends of one episode are told apart by the relay's state."""
    return f"RELAY {identity}{' ' + episode if episode else ''}{' resolved' if resolved else ''}"


def relayed_log_fingerprint(tool: str, level: str, template: str) -> str:
    """A relayed log event (Seq) by its level and message template, as a log record is grouped."""
    return f"RELAY {tool} {level} {template[:TEMPLATE_CHARACTERS]}"
