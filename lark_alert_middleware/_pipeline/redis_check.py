"""What `lark-alert check` says about Redis: which topology answered, and whether the keys of each
script share a slot (what a cluster needs). Blocking calls: the command line's, never the app's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from .._config import AlertSettings
from .._lark.urls import safe_url
from .._redis_url import is_sentinel_url, parse_sentinel_url, split_hosts
from .build import destination_of
from .redis_keys import keys_of_each_script

_FAILURES = (redis.RedisError, RedisClusterException, OSError)
CLUSTER_SLOTS = 16384
SlotOf = Callable[[str], int]


@dataclass
class RedisReport:
    """Lines to print (name, what was found) and problems (each says how to fix it)."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Found:
    topology: str
    slot_of: SlotOf  # the cluster's own answer (CLUSTER KEYSLOT), or redis-py's computation
    problems: list[str] = field(default_factory=list)  # each one keeps dedup per process
    asked_the_cluster: bool = False


def check_redis(settings: AlertSettings, timeout: float) -> RedisReport:
    """Ask the Redis that REDIS_URL names (which must be set) what it is, within `timeout` per call."""
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    shown = safe_url(url)
    keys = keys_of_each_script(settings.redis_key_prefix, destination_of(settings).webhook_url)
    report = RedisReport()
    try:
        if settings.redis_cluster:
            found = _ask_cluster(url, timeout, keys)
        elif is_sentinel_url(url):
            found = _ask_sentinels(url, timeout)
        else:
            found = _ask_server(url, timeout)
    except _FAILURES as error:
        report.lines.append(("REDIS_URL", shown))
        report.problems.append(
            f"REDIS_URL: {shown} did not answer PING ({type(error).__name__}: {error}); "
            "dedup would fall back to per process until it does"
        )
        return report
    outcome = ", but dedup would stay per process" if found.problems else ": dedup is fleet-wide"
    report.lines.append(("REDIS_URL", f"{shown} ({found.topology}; answered PING{outcome})"))
    report.lines.append(("Redis key slots", _slots_line(keys, found)))
    report.problems.extend(found.problems)
    return report


def _slots_line(keys: dict[str, list[str]], found: _Found) -> str:
    split = [script for script, touched in keys.items() if len({found.slot_of(key) for key in touched}) > 1]
    if not split:
        whose = "as the cluster computes them" if found.asked_the_cluster else "ready for a cluster"
        return f"consistent: the keys of each script share one slot ({whose})"
    message = f"the keys of the {', '.join(split)} fall in different slots"
    if found.asked_the_cluster:
        found.problems.append(f"{message}: a cluster refuses such a script (CROSSSLOT)")
        return "inconsistent"
    return f"{message}: fine on one server, refused by a cluster (LARK_ALERT_REDIS_PREFIX holds {{ or }})"


def _computed_slot(key: str) -> int:
    return int(key_slot(key.encode()))


def _ask_server(url: str, timeout: float) -> _Found:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
        in_cluster_mode = client.info("cluster").get("cluster_enabled") == 1
    finally:
        client.close()
    found = _Found("a server", _computed_slot)
    if in_cluster_mode:
        found.topology = "a node of a cluster"
        found.problems.append(
            "REDIS_URL names a node of a Redis Cluster: set LARK_ALERT_REDIS_CLUSTER=true (without it, "
            "claims whose keys live on another node fail with MOVED and dedup stays per process)"
        )
    return found


def _ask_sentinels(url: str, timeout: float) -> _Found:
    address = parse_sentinel_url(url)
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel_login = {**timeouts, "password": address.sentinel_password}
    sentinel = Sentinel(address.sentinels, sentinel_kwargs=sentinel_login)
    master = sentinel.master_for(
        address.service_name,
        db=address.db,
        username=address.username,
        password=address.password,
        **timeouts,
    )
    try:
        host, port = sentinel.discover_master(address.service_name)
        master.ping()
    finally:
        master.close()
        master.connection_pool.disconnect()
        for client in sentinel.sentinels:
            client.close()
    return _Found(f"sentinels: the master of {address.service_name!r} is {host}:{port}", _computed_slot)


def _ask_cluster(url: str, timeout: float, keys: dict[str, list[str]]) -> _Found:
    first_node_url, nodes = split_hosts(url)
    others = [ClusterNode(host, port) for host, port in nodes[1:]]  # type: ignore[no-untyped-call]
    try:
        client = RedisCluster.from_url(
            first_node_url, startup_nodes=others, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    except RedisClusterException as error:
        if "not enabled" not in str(error):
            raise
        found = _ask_server(first_node_url, timeout)
        found.problems.append(
            "LARK_ALERT_REDIS_CLUSTER is set, but REDIS_URL's server is not in cluster mode: unset it"
        )
        return found
    try:
        masters = client.get_primaries()  # type: ignore[no-untyped-call]
        client.ping(target_nodes=masters)
        info: dict[str, Any] = client.cluster_info()
        slots = {key: int(client.cluster_keyslot(key)) for touched in keys.values() for key in touched}
    finally:
        client.close()
    found = _Found(f"a cluster with {len(masters)} masters", slots.__getitem__, asked_the_cluster=True)
    state, assigned = info.get("cluster_state"), int(info.get("cluster_slots_assigned", 0))
    if state != "ok" or assigned != CLUSTER_SLOTS:
        found.problems.append(
            f"the cluster says cluster_state:{state} with {assigned} of {CLUSTER_SLOTS} slots assigned: "
            "until every slot has a master, some claims fail and dedup falls back to per process"
        )
    return found
