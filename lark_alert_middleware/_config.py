"""Settings from the environment, overridable by keyword arguments, validated once at start-up."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import redis
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Unpack

from ._lark.webhook import LARK_HOSTS
from ._redis_url import is_sentinel_url, parse_sentinel_url, split_hosts
from ._routes_config import Route, routes_from_setting


def is_encodable(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (it holds no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ConfigurationError(ValueError):
    """The middleware's configuration is invalid; the message names the variable and the problem."""


_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def parse_status_codes(value: Any) -> frozenset[int]:
    """Read `400-599`, `500-599,429` or an iterable of ints/ranges into a set of statuses."""
    if isinstance(value, frozenset):
        return value
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
        if not value:
            raise ValueError("is empty; use a list like 400-599 or 500-599,429")
    statuses: set[int] = set()
    for part in value:
        if isinstance(part, int):
            low, high = part, part
        elif isinstance(part, range):
            low, high = part.start, part.stop - 1
        else:
            match = _STATUS_RANGE.match(str(part))
            if match is None:
                raise ValueError(f"{str(part).strip()!r} is not a status or a range like 500-599")
            low = int(match.group(1))
            high = int(match.group(2) or match.group(1))
        if not 100 <= low <= high <= 599:
            raise ValueError(f"{low}-{high} is not a range of HTTP statuses between 100 and 599")
        statuses.update(range(low, high + 1))
    return frozenset(statuses)


def parse_comma_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(item.strip() for item in value if item and item.strip())


def parse_log_level(value: Any) -> int | None:
    """Read a level name (`ERROR`, `warning`) or number into a level; `off`, empty or False is None."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        name = value.strip().upper()
        if name in ("", "OFF"):
            return None
        value = int(name) if name.isdigit() else logging.getLevelName(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("is not a log level; use DEBUG, INFO, WARNING, ERROR, CRITICAL or off")
    return value


StatusCodes = Annotated[frozenset[int], NoDecode, BeforeValidator(parse_status_codes)]
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_comma_list)]
LogLevel = Annotated[int | None, NoDecode, BeforeValidator(parse_log_level)]


def parse_thresholds(value: Any) -> tuple[int, ...]:
    """Read `10,100,1000` (or an iterable of ints) into ascending counts; empty turns it off."""
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    counts = set()
    for part in value:
        try:
            count = int(part)
        except (TypeError, ValueError):
            raise ValueError(f"{str(part).strip()!r} is not a count; use a list like 10,100,1000") from None
        if not 2 <= count <= 1_000_000_000:
            raise ValueError(f"{count} is not a count between 2 and 1,000,000,000 (1 is the first card)")
        counts.add(count)
    return tuple(sorted(counts))


ThresholdCounts = Annotated[tuple[int, ...], NoDecode, BeforeValidator(parse_thresholds)]


class AlertSettings(BaseSettings):
    """Every option of the middleware: read from the environment, overridden by keyword arguments."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, populate_by_name=True, case_sensitive=True)

    enabled: bool = Field(True, validation_alias="LARK_ALERT_ENABLED")
    # Before webhook_url: fields are validated in this order, and the webhook's check reads this one.
    allowed_webhook_hosts: CommaList = Field((), validation_alias="LARK_ALERT_ALLOWED_WEBHOOK_HOSTS")
    webhook_url: SecretStr | None = Field(None, validation_alias="LARK_WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(None, validation_alias="LARK_WEBHOOK_SECRET")
    keyword: str | None = Field(None, validation_alias="LARK_ALERT_KEYWORD")
    redis_url: SecretStr | None = Field(None, validation_alias="REDIS_URL")
    redis_key_prefix: str = Field("lark-alert:", min_length=1, validation_alias="LARK_ALERT_REDIS_PREFIX")
    redis_timeout: float = Field(0.25, gt=0, le=30, validation_alias="LARK_ALERT_REDIS_TIMEOUT")
    rate_limit: int = Field(60, ge=0, le=30 * 24 * 3600, validation_alias="LARK_ALERT_RATE_LIMIT")
    status_codes: StatusCodes = Field(frozenset(range(400, 600)), validation_alias="LARK_ALERT_STATUS_CODES")
    exclude_paths: CommaList = Field((), validation_alias="LARK_ALERT_EXCLUDE_PATHS")
    max_body_bytes: int = Field(8192, ge=0, le=1024 * 1024, validation_alias="LARK_ALERT_MAX_BODY_BYTES")
    template: Path | None = Field(None, validation_alias="LARK_ALERT_TEMPLATE")
    service: str | None = Field(None, validation_alias="LARK_ALERT_SERVICE")
    environment: str = Field("production", min_length=1, validation_alias="LARK_ALERT_ENV")
    seq_url: str | None = Field(None, validation_alias="SEQ_URL")
    trace_url: str | None = Field(None, validation_alias="LARK_ALERT_TRACE_URL")
    mention: CommaList = Field((), validation_alias="LARK_ALERT_MENTION")
    redact_fields: CommaList = Field((), validation_alias="LARK_ALERT_REDACT_FIELDS")
    shutdown_timeout: float = Field(5.0, ge=0, le=300, validation_alias="LARK_ALERT_SHUTDOWN_TIMEOUT")
    queue_size: int = Field(50, ge=1, le=100_000, validation_alias="LARK_ALERT_QUEUE_SIZE")
    max_in_flight: int = Field(4, ge=1, le=64, validation_alias="LARK_ALERT_MAX_IN_FLIGHT")
    post_timeout: float = Field(10.0, gt=0, le=120, validation_alias="LARK_ALERT_POST_TIMEOUT")
    dedup_capacity: int = Field(10_000, ge=10, le=10_000_000, validation_alias="LARK_ALERT_DEDUP_CAPACITY")
    # Log records the middleware's app sends as alerts: at or above this level (None: none).
    capture_logs: LogLevel = Field(None, validation_alias="LARK_ALERT_CAPTURE_LOGS")
    # Redis Cluster: REDIS_URL names one or more of its nodes.
    redis_cluster: bool = Field(False, validate_default=True, validation_alias="LARK_ALERT_REDIS_CLUSTER")
    # The relay (`lark-alert relay`): the token every POST carries, Grafana's signing secret,
    # whether resolved alerts get a card, the relay's card template, and how long an alert's
    # last carded state is kept (a still-firing alert is carded again after that).
    relay_token: SecretStr | None = Field(None, validation_alias="LARK_RELAY_TOKEN")
    relay_grafana_secret: SecretStr | None = Field(None, validation_alias="LARK_RELAY_GRAFANA_SECRET")
    relay_send_resolved: bool = Field(True, validation_alias="LARK_RELAY_SEND_RESOLVED")
    relay_template: Path | None = Field(None, validation_alias="LARK_RELAY_TEMPLATE")
    relay_repeat_interval: int = Field(
        4 * 3600, ge=60, le=30 * 24 * 3600, validation_alias="LARK_RELAY_REPEAT_INTERVAL"
    )
    # When the card speaks again: escalation inside a window.
    escalate_at: ThresholdCounts = Field((10, 100, 1000, 10000), validation_alias="LARK_ALERT_ESCALATE_AT")
    check_interval: float = Field(5.0, ge=0.1, le=60, validation_alias="LARK_ALERT_CHECK_INTERVAL")
    # New, back or ongoing: how long errors are remembered, how long a quiet spell makes one Back.
    memory_days: int = Field(14, ge=1, le=366, validation_alias="LARK_ALERT_MEMORY_DAYS")
    regression_after: int = Field(86400, ge=1, validation_alias="LARK_ALERT_REGRESSION_AFTER")
    # Recovered (opt-in): seconds an error carded must stay quiet for its green card.
    recovery_after: int | None = Field(None, ge=1, validation_alias="LARK_ALERT_RECOVERY_AFTER")
    # The daily summary (opt-in): when it is due, in which time zone.
    daily_summary: dt.time | None = Field(None, validation_alias="LARK_ALERT_DAILY_SUMMARY")
    timezone: str = Field("UTC", validation_alias="LARK_ALERT_TIMEZONE")

    @field_validator("recovery_after", "daily_summary", mode="before")
    @classmethod
    def _blank_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("daily_summary", mode="before")
    @classmethod
    def _time_of_day(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return value  # blank: off (see _blank_is_off)
        try:
            at = dt.time.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "is not a time of day like 09:00 or 17:30:00 (24-hour, two digits each)"
            ) from None
        if at.tzinfo is not None:
            raise ValueError("must not name a time zone; set LARK_ALERT_TIMEZONE")
        return at

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone like UTC, Europe/Paris or Asia/Shanghai") from None
        return value.strip()

    @field_validator("regression_after", "recovery_after")
    @classmethod
    def _spell_within_memory(cls, value: int | None, info: ValidationInfo) -> int | None:
        memory_days = info.data.get("memory_days")  # absent when itself invalid (reported)
        if value is not None and memory_days is not None and value >= memory_days * 24 * 3600:
            raise ValueError(
                f"must be shorter than LARK_ALERT_MEMORY_DAYS ({memory_days} days, "
                f"{memory_days * 86400} s): the errors would be forgotten first"
            )
        return value

    # Routes (issue 17); last: their validation reads the fields above.
    routes: Annotated[tuple[Route, ...], NoDecode] = Field((), validation_alias="LARK_ALERT_ROUTES")

    @field_validator("routes", mode="before")
    @classmethod
    def _routes_are_valid(cls, value: Any, info: ValidationInfo) -> tuple[Route, ...]:
        return routes_from_setting(value, info.data.get("allowed_webhook_hosts"))

    @field_validator("allowed_webhook_hosts")
    @classmethod
    def _hosts_are_hostnames(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not _HOSTNAME.fullmatch(host) and _ip_address(host) is None:
                raise ValueError(
                    f"{host!r} is not a host name; list each host exactly, like relay.example.com "
                    "(no scheme, port, path or wildcard)"
                )
        return tuple(host.lower() for host in value)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_https_on_a_lark_host(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        check_webhook_url(url, info.data.get("allowed_webhook_hosts"))  # absent when itself invalid
        return SecretStr(url)

    @field_validator("webhook_secret", "redis_url")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_readable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        if is_sentinel_url(url):
            parse_sentinel_url(url)  # its messages quote no secret
            return value
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
        try:
            if not url.startswith("unix://"):
                url = split_hosts(url)[0]  # a cluster's nodes may be listed: host:port,host:port
            # What the alerter's client will do with it; unreadable, every alert would be dropped.
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError:
            # Not redis-py's message: it can quote part of the URL, password included.
            raise ValueError(
                "redis-py cannot read it: check the port, the database number and the query options "
                "(in a password, / ? # @ must be percent-encoded)"
            ) from None
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_setting_fits_redis_url(cls, value: bool, info: ValidationInfo) -> bool:
        if "redis_url" not in info.data:  # REDIS_URL itself is invalid (reported)
            return value
        url = info.data["redis_url"].get_secret_value() if info.data["redis_url"] is not None else None
        is_node_url = url is not None and url.startswith(("redis://", "rediss://"))
        if not value:
            if url is not None and is_node_url and len(split_hosts(url)[1]) > 1:
                raise ValueError("is not set, but REDIS_URL lists several hosts, as only a cluster's may")
            return value
        if url is None:
            raise ValueError("needs REDIS_URL: set it to any node of the cluster, like redis://node-1:6379")
        if not is_node_url:
            raise ValueError("needs REDIS_URL to name a node of the cluster with redis:// or rediss://")
        if (redis.connection.parse_url(split_hosts(url)[0]).get("db") or 0) != 0:  # type: ignore[no-untyped-call]
            raise ValueError("a Redis Cluster has database 0 only: end REDIS_URL with /0 or no database")
        prefix = info.data.get("redis_key_prefix", "")
        if "{" in prefix or "}" in prefix:
            raise ValueError(
                "LARK_ALERT_REDIS_PREFIX holds { or }: on a cluster the keys' own hash tags choose their "
                "slots; use a prefix without braces"
            )
        return value

    @field_validator("template")
    @classmethod
    def _template_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @field_validator("exclude_paths")
    @classmethod
    def _paths_are_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern.startswith(("/", "*")):
                raise ValueError(f"{pattern!r} is not a path pattern; patterns start with / or *")
        return value

    @field_validator("mention")
    @classmethod
    def _mentions_are_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for target in value:
            if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", target):
                raise ValueError(f"{target!r} is not 'all' or a Lark open_id/user_id")
        return value

    @field_validator("seq_url", "trace_url")
    @classmethod
    def _link_is_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if urlsplit(value.strip()).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value.strip()

    @field_validator("service", "keyword")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @field_validator("service", "keyword", "environment", "redact_fields", "seq_url", "trace_url")
    @classmethod
    def _is_text(cls, value: Any) -> Any:
        # An environment variable holding bytes that are not UTF-8 reads as lone surrogates,
        # which no card can carry (and Lark would refuse a keyword spoilt by a replacement).
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and not is_encodable(text):
                raise ValueError("holds bytes that are not UTF-8 text")
        return value

    @field_validator("relay_token", "relay_grafana_secret")
    @classmethod
    def _relay_secret_is_long_and_printable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        secret = value.get_secret_value().strip()
        if not re.fullmatch(r"[!-~]{16,512}", secret):
            raise ValueError(
                "must be 16 to 512 printable ASCII characters without spaces; make one with "
                "`openssl rand -hex 16`"
            )
        return SecretStr(secret)

    @field_validator("relay_template")
    @classmethod
    def _relay_template_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value


class AlertOptions(TypedDict, total=False):
    """The keyword arguments of LarkAlertMiddleware: each overrides its environment variable."""

    enabled: bool
    allowed_webhook_hosts: str | Iterable[str]
    webhook_url: str | None
    webhook_secret: str | None
    keyword: str | None
    redis_url: str | None
    redis_key_prefix: str
    redis_timeout: float
    rate_limit: int
    status_codes: str | int | Iterable[int | range | str]
    exclude_paths: str | Iterable[str]
    max_body_bytes: int
    template: str | Path | None
    service: str | None
    environment: str
    seq_url: str | None
    trace_url: str | None
    mention: str | Iterable[str]
    redact_fields: str | Iterable[str]
    shutdown_timeout: float
    queue_size: int
    max_in_flight: int
    post_timeout: float
    dedup_capacity: int
    capture_logs: str | int | None
    redis_cluster: bool
    relay_token: str | None
    relay_grafana_secret: str | None
    relay_send_resolved: bool
    relay_template: str | Path | None
    relay_repeat_interval: int
    escalate_at: str | int | Iterable[int]
    check_interval: float
    memory_days: int
    regression_after: int
    recovery_after: int | None
    daily_summary: str | dt.time | None
    timezone: str
    routes: str | Path | Iterable[Route | Mapping[str, Any]] | None


def environment_variable(field_name: str) -> str:
    """The environment variable that sets a field, e.g. `rate_limit` -> `LARK_ALERT_RATE_LIMIT`."""
    alias = AlertSettings.model_fields[field_name].validation_alias
    assert isinstance(alias, str)
    return alias


def _describe(error: Any) -> str:
    location = str(error["loc"][0]) if error["loc"] else "?"
    field_name = _FIELD_BY_VARIABLE.get(location, location)
    if field_name in AlertSettings.model_fields:
        name = f"{environment_variable(field_name)} ({field_name}=)"
    else:
        name = f"{location}="
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{name}: unknown option; known options are {', '.join(sorted(AlertSettings.model_fields))}"
    shown = error.get("input")
    if isinstance(shown, SecretStr) or field_name in _SECRET_FIELDS:
        return f"{name}: {message}"
    return f"{name}: {message} (got {shown!r})"


_SECRET_FIELDS = (
    "webhook_url",
    "webhook_secret",
    "redis_url",
    "routes",
    "relay_token",
    "relay_grafana_secret",
)
_FIELD_BY_VARIABLE = {
    field.validation_alias: name
    for name, field in AlertSettings.model_fields.items()
    if isinstance(field.validation_alias, str)
}


def load_settings(**overrides: Unpack[AlertOptions]) -> AlertSettings:
    """Read the environment, apply keyword overrides, and raise ConfigurationError naming what is wrong."""
    try:
        return AlertSettings(**dict[str, Any](overrides))  # validated (and coerced) by pydantic
    except ValidationError as error:
        problems = "\n  ".join(_describe(item) for item in error.errors())
        raise ConfigurationError(f"invalid lark_alert_middleware configuration:\n  {problems}") from None


def iter_variables() -> Iterable[tuple[str, str]]:
    """(environment variable, field name) pairs, for documentation and the CLI."""
    for name in AlertSettings.model_fields:
        yield environment_variable(name), name


_HOSTNAME = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
WebhookHostKind = Literal["lark", "loopback", "allowed"]


def webhook_host_kind(url: str, allowed_hosts: Collection[str]) -> WebhookHostKind | None:
    """Why posting to `url` is allowed ("lark", "loopback" or "allowed"), or None when it is not.

    Lark's hosts only over https (the card holds request data); loopback (test receivers) and
    the hosts in LARK_ALERT_ALLOWED_WEBHOOK_HOSTS (relays, matched exactly) over http or https.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in LARK_HOSTS:
        return "lark" if parts.scheme == "https" else None
    address = _ip_address(host)
    if host == "localhost" or (address is not None and address.is_loopback):
        return "loopback"
    return "allowed" if host in allowed_hosts else None


def check_webhook_url(url: str, allowed_hosts: Collection[str] | None) -> None:
    """Raise ValueError saying why cards may not be posted to `url` (None: the hosts are unknown)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not _httpx_accepts(url):
        raise ValueError(
            "must be an http(s) URL like https://open.larksuite.com/open-apis/bot/v2/hook/<token>"
        )
    if allowed_hosts is not None and webhook_host_kind(url, allowed_hosts) is None:
        host_and_port = parts.netloc.rpartition("@")[2]
        raise ValueError(
            f"{parts.scheme}://{host_and_port} is not https:// on a Lark or Feishu host "
            f"({', '.join(LARK_HOSTS)}) nor a loopback test receiver; use the https:// webhook URL "
            "from the bot's settings, or add the host to LARK_ALERT_ALLOWED_WEBHOOK_HOSTS for a relay"
        )


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _httpx_accepts(url: str) -> bool:
    """Whether posting will be able to parse the URL (httpx refuses control characters, for one)."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return True
