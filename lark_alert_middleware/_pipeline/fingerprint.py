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
    """The default rule applied to a captured event."""
    return fingerprint_of(event.method, event.route, event.status_code, event.exception)
