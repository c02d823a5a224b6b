"""REDIS_URLs that name several hosts: the sentinels of a service, or the nodes of a cluster.

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<service-name>[/<db>][?sentinel_password=...]

The sentinels' port is 26379 unless given; an IPv6 address goes in brackets (`[::1]:26379`).
The user and password are the master's (and its replicas'); sentinels that require a password
of their own take it from `sentinel_password`.

    redis[s]://[[user]:password@]host[:port][,host[:port]...][/0][?option=...]

With LARK_ALERT_REDIS_CLUSTER, any one node is enough to find the others; listing several
lets a process start while one of them is down. Messages never quote a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379
REDIS_PORT = 6379


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def is_sentinel_url(url: str) -> bool:
    return url[: len(SENTINEL_SCHEME)].lower() == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a `redis+sentinel://` URL; ValueError says what is wrong without quoting a secret."""
    rest = url[len(SENTINEL_SCHEME) :].partition("#")[0]
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at_sign, hosts = authority.rpartition("@")
    username = password = None
    if at_sign:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    service_name, _, db_text = path.strip("/").partition("/")
    if not service_name:
        raise ValueError(
            "names no service: the sentinels' name for the master comes after the hosts, like "
            "redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster"
        )
    if "/" in db_text or (db_text and not db_text.isdigit()):
        raise ValueError("the database after the service name must be a number, like /mymaster/0")
    return SentinelURL(
        sentinels=tuple(_host_and_port(host, SENTINEL_PORT) for host in hosts.split(",")),
        service_name=unquote(service_name),
        db=int(db_text or 0),
        username=username,
        password=password,
        sentinel_password=_sentinel_password(query),
    )


def split_hosts(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A `redis[s]://` URL with its first host only (what redis-py reads), and every host it lists."""
    scheme, separator, rest = url.partition("://")
    end = min((index for index in map(rest.find, "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at_sign, hosts = authority.rpartition("@")
    listed = hosts.split(",")
    nodes = [_host_and_port(host, REDIS_PORT) for host in listed]
    return f"{scheme}{separator}{userinfo}{at_sign}{listed[0]}{tail}", nodes


def _host_and_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError("lists an empty host; list them as host:port,host:port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"host {host}: the port must be a number from 1 to 65535")
    return host, int(port or default_port)


def _sentinel_password(query: str) -> str | None:
    password = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "sentinel_password":
            raise ValueError(f"unknown option {name!r}; the only option is sentinel_password")
        password = value or None
    return password
