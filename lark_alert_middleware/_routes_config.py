"""Routes: which errors go to which Lark group, from `LARK_ALERT_ROUTES` (a TOML file) or in code.

`LARK_ALERT_ROUTES=alert-routes.toml` names a file of `[[route]]` tables; `routes=[Route(...)]`
does the same in code. They are read and validated once, at start-up, and every mistake is
reported with the route and the key it is in: an unknown key, a value of the wrong kind, an
unparsable status range, a `*_env` variable that is not set, a template that cannot be read,
a webhook URL cards may not be posted to. What a route matches, and where an error goes, is
decided by the pipeline (`_pipeline/routing.py`); this module only says what the routes are.

`_config` imports this module for its settings, so the rules the two share (status ranges,
mention ids, webhook hosts) are imported from `_config` where they are used.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._records import LEVELS, SOURCES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Longest route name: it is shown in logs, in `lark-alert routes` and in counters.
NAME_CHARACTERS = 64
_ENVIRONMENT_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _status_codes(value: Any) -> frozenset[int]:
    from ._config import parse_status_codes

    return parse_status_codes(value)


def _text(value: str, what: str) -> str:
    from ._config import is_encodable

    if _CONTROL.search(value) or not is_encodable(value):
        raise ValueError(f"{value!r} is not printable text {what}")
    return value


def _patterns(value: Any) -> tuple[str, ...]:
    """One pattern, or a list of them of which any may match."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{value!r} is not a pattern or a list of patterns")
    if not items:
        raise ValueError("is an empty list; leave the key out to match every error")
    patterns = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{item!r} is not a pattern (a non-empty string)")
        patterns.append(_text(item.strip(), "(a pattern)"))
    return tuple(patterns)


def _one_of(known: Sequence[str]) -> Any:
    def names(value: Any) -> tuple[str, ...]:
        chosen = _patterns(value)
        for name in chosen:
            if name not in known:
                raise ValueError(f"{name!r} is not one of {', '.join(known)}")
        return chosen

    return names


def _methods(value: Any) -> tuple[str, ...]:
    return tuple(pattern.upper() for pattern in _patterns(value))


def _mentions(value: Any) -> tuple[str, ...]:
    targets = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(targets, (list, tuple)):
        raise ValueError("must be a list like ['all'] or ['ou_3f1c2d9e', 'ou_77ab']")
    for target in targets:
        if not isinstance(target, str) or not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", target):
            raise ValueError(f"{target!r} is not 'all' or a Lark open_id/user_id")
    return tuple(targets)


Patterns = Annotated[tuple[str, ...], BeforeValidator(_patterns)]
StatusCodes = Annotated[frozenset[int], BeforeValidator(_status_codes)]


_GLOB_KEYS = ("method", "route", "path", "exception", "source", "logger", "level", "environment", "service")


class RouteMatch(BaseModel):
    """What a route matches: every key given must match; a route without keys matches every error.

    `status` takes ranges as `LARK_ALERT_STATUS_CODES` does; the others take a glob (`*`, `?`,
    `[...]`; `*` matches `/` too) or a list of globs, any of which may match.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: StatusCodes | None = None
    method: Annotated[tuple[str, ...], BeforeValidator(_methods)] | None = None
    route: Patterns | None = None  # the route template; `<unmatched>` when no route matched
    path: Patterns | None = None
    exception: Patterns | None = None  # a type's name or `module.Name`, along its MRO
    source: Annotated[tuple[str, ...], BeforeValidator(_one_of(SOURCES))] | None = None
    logger: Patterns | None = None
    level: Annotated[tuple[str, ...], BeforeValidator(_one_of(LEVELS))] | None = None
    environment: Patterns | None = None
    service: Patterns | None = None
    labels: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a relayed alert's labels, by name

    @model_validator(mode="before")
    @classmethod
    def _label_keys(cls, data: Any) -> Any:
        """`"labels.team" = "payments"` (one key with a dot) as well as `labels = {team = ...}`."""
        if not isinstance(data, Mapping):
            return data
        flat = {key: value for key, value in data.items() if str(key).startswith("labels.")}
        if not flat:
            return data
        nested = data.get("labels") or {}
        if not isinstance(nested, Mapping):
            return data  # reported by the labels validator
        merged = {key: value for key, value in data.items() if key not in flat}
        merged["labels"] = {**nested, **{str(key).removeprefix("labels."): v for key, v in flat.items()}}
        return merged

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_are_patterns(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return tuple((_text(str(name), "(a label name)"), _patterns(v)) for name, v in value.items())
        if isinstance(value, (list, tuple)):
            return value
        raise ValueError("must be a table of label names and patterns, like {team = 'payments'}")

    def conditions(self) -> list[tuple[str, str]]:
        """Each key given and its value as written here, e.g. ("status", "500-599")."""
        shown: list[tuple[str, str]] = []
        if self.status is not None:
            shown.append(("status", status_ranges(self.status)))
        for key in _GLOB_KEYS:
            patterns = getattr(self, key)
            if patterns is not None:
                shown.append((key, ",".join(patterns)))
        shown.extend((f"labels.{name}", ",".join(patterns)) for name, patterns in self.labels)
        return shown


class Route(BaseModel):
    """One route: the errors it matches, and where and how their cards go.

    A route without a webhook posts to `LARK_WEBHOOK_URL` (signed with `LARK_WEBHOOK_SECRET`,
    with `LARK_ALERT_KEYWORD`); one without `template`, `rate_limit` or `status_codes` uses
    `LARK_ALERT_TEMPLATE`, `LARK_ALERT_RATE_LIMIT` or `LARK_ALERT_STATUS_CODES`. `mention` pings
    on this route's cards only. `drop=True` sends nothing (counted as `routed_away`);
    `continue_=True` (`continue = true` in a file) goes on to the routes after this one.
    Checked as it is made (pydantic's ValidationError names the key); its webhook, secret and
    template are checked at start-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    match: RouteMatch = RouteMatch()
    continue_: bool = Field(default=False, validation_alias=AliasChoices("continue", "continue_"))
    drop: bool = False
    # Secrets by the name of the environment variable that holds them, so a file can be committed.
    webhook_url_env: str | None = None
    webhook_secret_env: str | None = None
    # In code only; filled in from the *_env variables at start-up.
    webhook_url: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    keyword: str | None = None
    template: Path | None = None  # in a file: relative to the file's folder
    mention: Annotated[tuple[str, ...], BeforeValidator(_mentions)] = ()
    mention_after: PositiveInt | None = None  # ping only once the error happened this often in its window
    rate_limit: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)  # this route's dedup window
    status_codes: StatusCodes | None = None  # the statuses this route alerts on

    @field_validator("name")
    @classmethod
    def _name_is_short_text(cls, value: str) -> str:
        name = value.strip()
        if not name or len(name) > NAME_CHARACTERS:
            raise ValueError(f"must be 1 to {NAME_CHARACTERS} characters")
        return _text(name, "(a route name)")

    @field_validator("webhook_url_env", "webhook_secret_env")
    @classmethod
    def _is_a_variable_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENVIRONMENT_VARIABLE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not the name of an environment variable, like PAYMENTS_LARK_WEBHOOK"
            )
        return value

    @field_validator("webhook_url", "webhook_secret")
    @classmethod
    def _not_in_a_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.context and info.context.get("file"):
            raise ValueError(
                f"a secret does not belong in a file that may be committed; put it in an environment "
                f"variable and name that variable with {info.field_name}_env"
            )
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("keyword")
    @classmethod
    def _keyword_is_text(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _text(value.strip(), "(a keyword)")

    @field_validator("template")
    @classmethod
    def _template_beside_the_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        folder = info.context.get("folder") if info.context else None
        if value is not None and folder is not None and not value.is_absolute():
            return Path(folder) / value
        return value

    @model_validator(mode="before")
    @classmethod
    def _secret_given_once(cls, data: Any) -> Any:
        # On what was given: a route read from the environment holds both (the name, for display).
        if isinstance(data, Mapping):
            for own in ("webhook_url", "webhook_secret"):
                if data.get(own) is not None and data.get(f"{own}_env") is not None:
                    raise ValueError(f"{own}: give either {own} or {own}_env, not both")
        return data

    @model_validator(mode="after")
    def _keys_agree(self) -> Route:
        if self.drop:
            sending = [key for key in _SENDING_KEYS if key in self.model_fields_set]
            if self.continue_:
                sending.insert(0, "continue")
            if sending:
                raise ValueError(f"{sending[0]}: a route with drop = true sends nothing; remove {sending[0]}")
        if not self.has_own_webhook and (
            self.webhook_secret is not None or self.webhook_secret_env is not None
        ):
            key = "webhook_secret_env" if self.webhook_secret_env is not None else "webhook_secret"
            raise ValueError(
                f"{key}: a secret belongs to a webhook; set webhook_url_env too (a route without a "
                "webhook posts to LARK_WEBHOOK_URL, signed with LARK_WEBHOOK_SECRET)"
            )
        if self.mention_after is not None and not self.mention:
            raise ValueError(
                "mention_after: set mention too: whom to ping once the error happened that often"
            )
        return self

    @property
    def has_own_webhook(self) -> bool:
        return self.webhook_url is not None or self.webhook_url_env is not None


# What a dropping route cannot have: it sends nothing.
_SENDING_KEYS = (
    "webhook_url_env",
    "webhook_secret_env",
    "webhook_url",
    "webhook_secret",
    "keyword",
    "template",
    "mention",
    "mention_after",
    "rate_limit",
    "status_codes",
)


def routes_from_setting(value: Any, allowed_hosts: Sequence[str] | None) -> tuple[Route, ...]:
    """The routes of `LARK_ALERT_ROUTES` (a file path) or `routes=` (Routes or mappings), each with
    its webhook and secret read from the environment; ValueError listing every mistake."""
    if value is None or (isinstance(value, (str, Path)) and not str(value).strip()):
        return ()
    if isinstance(value, (str, Path)):
        path = Path(value)
        entries, where = _file_entries(path), f"in {path}"
        context: dict[str, Any] = {"file": True, "folder": path.parent}
    elif isinstance(value, (Route, Mapping)):
        entries, where, context = [value], "of routes=", {}
    elif isinstance(value, Iterable):
        entries, where, context = list(value), "of routes=", {}
    else:
        raise ValueError("must be the path of a TOML file of [[route]] tables, or a list of Route")
    problems: list[str] = []
    routes: list[Route] = []
    names: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        name = (
            entry.name
            if isinstance(entry, Route)
            else (entry.get("name") if isinstance(entry, Mapping) else None)
        )
        label = f"route {name!r} (#{number} {where})" if isinstance(name, str) else f"route #{number} {where}"
        try:
            route = entry if isinstance(entry, Route) else Route.model_validate(entry, context=context)
        except ValidationError as error:
            problems.extend(f"{label}: {problem}" for problem in _problems(error))
            continue
        if route.name in names:
            problems.append(f"{label}: name: another route is named {route.name!r}; names must differ")
        names.add(route.name)
        resolved, route_problems = _resolved(route, allowed_hosts)
        problems.extend(f"{label}: {problem}" for problem in route_problems)
        routes.append(resolved)
    if problems:
        raise ValueError("\n    ".join(problems))
    return tuple(routes)


def _file_entries(path: Path) -> list[Any]:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(key for key in document if key != "route")
    if unknown:
        raise ValueError(f"{path}: {unknown[0]}: unknown key; the file holds [[route]] tables only")
    entries = document.get("route")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} holds no [[route]] tables")
    return entries


def _resolved(route: Route, allowed_hosts: Sequence[str] | None) -> tuple[Route, list[str]]:
    """The route with its secrets read from the environment, and what is wrong with it."""
    from ._config import check_webhook_url

    problems: list[str] = []
    secrets: dict[str, str] = {}
    for own in ("webhook_url", "webhook_secret"):
        variable = getattr(route, f"{own}_env")
        if variable is None:
            continue
        text = os.environ.get(variable, "").strip()
        if text:
            secrets[own] = text
        else:
            problems.append(f"{own}_env: {variable} is {'empty' if variable in os.environ else 'not set'}")
    url = secrets.get("webhook_url") or route.webhook_url
    if url is not None:
        try:
            check_webhook_url(url, allowed_hosts)
        except ValueError as error:
            if route.webhook_url_env is not None:
                problems.append(f"webhook_url_env: the URL in {route.webhook_url_env} {error}")
            else:
                problems.append(f"webhook_url: {error}")
    if route.template is not None:
        problem = _unreadable(route.template)
        if problem:
            problems.append(f"template: {problem}")
    return route.model_copy(update=secrets), problems


def _unreadable(template: Path) -> str | None:
    if not template.exists():
        return f"no such file: {str(template)!r}"
    if not template.is_file():
        return f"{str(template)!r} is not a file"
    try:
        with template.open("rb"):
            pass
    except OSError as error:
        return f"cannot read {str(template)!r}: {error.strerror or error}"
    return None


def _problems(error: ValidationError) -> list[str]:
    """Each of pydantic's errors as `key: what is wrong`, with the key as written in the file."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            known = RouteMatch.model_fields if key.startswith("match.") else _ROUTE_KEYS
            message = f"unknown key; known keys are {', '.join(sorted(known))}"
        elif item["type"] == "missing":
            message = "is required"
        problems.append(f"{key}: {message}" if key else message)
    return problems


_ROUTE_KEYS = [name.rstrip("_") for name in Route.model_fields]


def captured_statuses(status_codes: frozenset[int], routes: Iterable[Route]) -> frozenset[int]:
    """The statuses the middleware captures: `LARK_ALERT_STATUS_CODES` and every sending route's own."""
    captured = status_codes
    for route in routes:
        if route.status_codes is not None and not route.drop:
            captured = captured | route.status_codes
    return captured


def status_ranges(statuses: Iterable[int]) -> str:
    """A set of statuses as `LARK_ALERT_STATUS_CODES` writes it: `429,500-599`."""
    ranges: list[list[int]] = []
    for status in sorted(statuses):
        if ranges and status == ranges[-1][1] + 1:
            ranges[-1][1] = status
        else:
            ranges.append([status, status])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)
