"""Where each error goes: the routes, matched in order, on the alerter thread.

The first route whose every `match` key matches takes the error, unless it says `continue`:
then the routes after it are tried too, and the error goes to each that matches. A `drop`
route ends the matching and sends nothing; an error that goes nowhere is counted as
`routed_away`. An error no route matched goes to the default destination (`LARK_WEBHOOK_URL`),
as it would without routes.

Matching runs on the alerter thread, when an error is taken from the hand-off and before it is
claimed, never on the request path: an error is routed by its first occurrence in a window, and
its repeats follow it. (Only when the alerter is far behind and the request path folds an error
into a digest itself does it match the routes there, to fold it into the right digests.)

Dedup windows: an error is claimed once, in its own key, for the shortest window among its
destinations (`rate_limit`, or `LARK_ALERT_RATE_LIMIT`), so it is deduplicated and its repeats
are counted once whatever the number of routes. A destination whose window is longer keeps it
in a key of its own, claimed only when the error's claim is won: it gets a card at the first
claimed occurrence after its own window ended, and that card counts every occurrence since its
previous one.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._records import ErrorEvent
from .._routes_config import Route, RouteMatch, status_ranges
from .fingerprint import UNMATCHED_ROUTE


@dataclass(frozen=True, slots=True)
class Target:
    """A destination an error goes to, and how long the error is deduplicated there."""

    index: int  # the destination's place in the pipeline's list; 0 is the default
    name: str
    window_seconds: int


Targets = tuple[Target, ...]


def route_dedup_key(error_key: str, target: Target) -> str:
    """The key of a destination's own, longer window for an error (see the module's docstring)."""
    route = hashlib.blake2b(target.name.encode(), digest_size=6).hexdigest()
    return f"{error_key}:{route}"


Check = Callable[[ErrorEvent, str, str], str | None]


def _glob(patterns: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


def _text_check(
    key: str, patterns: Sequence[str], read: Callable[[ErrorEvent, str, str], str | None]
) -> Check:
    compiled = _glob(patterns)
    shown = ",".join(patterns)

    def check(event: ErrorEvent, service: str, environment: str) -> str | None:
        value = read(event, service, environment)
        if value is not None and compiled.match(value):
            return None
        return f"{key} {value!r} is not {shown}" if value is not None else f"it has no {key}"

    return check


def exception_names(event: ErrorEvent) -> list[str]:
    """The names an `exception` pattern is matched against: every class along the MRO, by name
    and by `module.Name` (only the type's own names once the exception is text)."""
    if event.exception is not None:
        names = []
        for kind in type(event.exception).__mro__[:-1]:  # not `object`
            names += [kind.__qualname__, f"{kind.__module__}.{kind.__qualname__}"]
        return names
    if event.exception_text is not None:
        type_name = event.exception_text.type_name
        return [type_name.rpartition(".")[2], type_name]
    return []


def _exception_check(patterns: Sequence[str]) -> Check:
    compiled = _glob(patterns)
    shown = ",".join(patterns)

    def check(event: ErrorEvent, service: str, environment: str) -> str | None:
        names = exception_names(event)
        if any(compiled.match(name) for name in names):
            return None
        return f"exception {names[0]} is not {shown}" if names else "it has no exception"

    return check


def _status_check(statuses: frozenset[int], what: str) -> Check:
    shown = status_ranges(statuses)

    def check(event: ErrorEvent, service: str, environment: str) -> str | None:
        status = event.status_code
        if status in statuses:
            return None
        return f"status {status} is not {what}{shown}" if status else "it has no status"

    return check


def _status_filter(statuses: frozenset[int], what: str) -> Check:
    """A status filter: errors without a status (a log record, say) pass it."""
    check = _status_check(statuses, what)
    return lambda event, service, environment: (
        check(event, service, environment) if event.status_code else None
    )


def _checks(match: RouteMatch) -> list[Check]:
    checks: list[Check] = []
    if match.status is not None:
        checks.append(_status_check(match.status, ""))
    if match.method is not None:
        checks.append(_text_check("method", match.method, lambda event, _, __: event.method))
    if match.route is not None:
        checks.append(_text_check("route", match.route, lambda event, _, __: event.route or UNMATCHED_ROUTE))
    if match.path is not None:
        checks.append(_text_check("path", match.path, lambda event, _, __: event.path))
    if match.exception is not None:
        checks.append(_exception_check(match.exception))
    if match.source is not None:
        checks.append(_text_check("source", match.source, lambda event, _, __: event.source))
    if match.logger is not None:
        checks.append(_text_check("logger", match.logger, lambda event, _, __: event.logger_name))
    if match.level is not None:
        checks.append(_text_check("level", match.level, lambda event, _, __: event.severity))
    if match.environment is not None:
        checks.append(_text_check("environment", match.environment, lambda _, __, environment: environment))
    if match.service is not None:
        checks.append(_text_check("service", match.service, lambda _, service, __: service))
    for name, patterns in match.labels:
        checks.append(_text_check(f"label {name}", patterns, _label_reader(name)))
    return checks


def _label_reader(name: str) -> Callable[[ErrorEvent, str, str], str | None]:
    def read(event: ErrorEvent, service: str, environment: str) -> str | None:
        for key, value in event.labels:
            if key == name:
                return value
        return None

    return read


class _CompiledRoute:
    def __init__(self, route: Route, target: Target | None) -> None:
        self.name = route.name
        self.target = target  # None: a dropping route
        self.goes_on = route.continue_
        self._checks = _checks(route.match)
        if route.status_codes is not None:
            self._checks.append(_status_filter(route.status_codes, "in its status_codes "))

    def mismatch(self, event: ErrorEvent, service: str, environment: str) -> str | None:
        """Why the route does not match `event`; None when it does."""
        for check in self._checks:
            reason = check(event, service, environment)
            if reason is not None:
                return reason
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one route made of an error, for `lark-alert routes`."""

    route: str
    matched: bool
    reason: str


class Router:
    """The routes of a pipeline, each with the destination its cards go to."""

    def __init__(
        self,
        routes: Sequence[tuple[Route, Target | None]],
        default: Target,
        default_statuses: frozenset[int] | None = None,
    ) -> None:
        """`routes` in order, each with its target (None for a dropping route); `default` for the
        errors none matched, which it alerts on if their status is in `default_statuses` (None: any)."""
        self._routes = [_CompiledRoute(route, target) for route, target in routes]
        self.default = default
        self._default_filter = (
            None
            if default_statuses is None
            else _status_filter(default_statuses, "in LARK_ALERT_STATUS_CODES ")
        )
        self._only_default = (default,)
        self.longest_window = max(
            [default.window_seconds, *(route.target.window_seconds for route in self._routes if route.target)]
        )

    def targets(self, event: ErrorEvent, service: str, environment: str) -> Targets:
        """Where `event` goes, in route order; empty when it goes nowhere."""
        if not self._routes:
            return self._only_default
        chosen: list[Target] = []
        for route in self._routes:
            if route.mismatch(event, service, environment) is not None:
                continue
            if route.target is None:
                break
            chosen.append(route.target)
            if not route.goes_on:
                break
        else:
            if not chosen:
                return self._to_default(event, service, environment)
        return tuple(chosen)

    def _to_default(self, event: ErrorEvent, service: str, environment: str) -> Targets:
        if self._default_filter is not None and self._default_filter(event, service, environment) is not None:
            return ()
        return self._only_default

    def explain(self, event: ErrorEvent, service: str, environment: str) -> tuple[list[Verdict], Targets]:
        """Each route's verdict on `event`, in order, and where it goes."""
        verdicts: list[Verdict] = []
        ended_by: str | None = None
        for route in self._routes:
            if ended_by is not None:
                verdicts.append(
                    Verdict(route.name, False, f"not reached: {ended_by} matched and ends the matching")
                )
                continue
            reason = route.mismatch(event, service, environment)
            if reason is not None:
                verdicts.append(Verdict(route.name, False, reason))
                continue
            if route.target is None:
                verdicts.append(Verdict(route.name, True, "matches: drop, nothing is sent"))
                ended_by = route.name
            elif route.goes_on:
                verdicts.append(Verdict(route.name, True, "matches, and goes on (continue = true)"))
            else:
                verdicts.append(Verdict(route.name, True, "matches"))
                ended_by = route.name
        if self._routes and not any(verdict.matched for verdict in verdicts):
            refusal = self._default_filter and self._default_filter(event, service, environment)
            reason = f"no route took it, and {refusal}" if refusal else "no route took it"
            verdicts.append(Verdict("(default)", not refusal, reason))
        return verdicts, self.targets(event, service, environment)
