"""The asyncio Redis client for what REDIS_URL names: one server, a cluster, or the master sentinels watch.

A cluster's client (`LARK_ALERT_REDIS_CLUSTER`) learns every node from the one named, follows
MOVED and ASK, and finds the new master of a slot after a failover. A sentinel's client asks
the sentinels for the master whenever it opens a connection, so a failover is followed once
the connections to the old master fail. While either is still failing, the breaker keeps the
pipeline off Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from .._redis_url import is_sentinel_url, parse_sentinel_url, split_hosts

RedisClient: TypeAlias = redis_asyncio.Redis | RedisCluster


@dataclass(frozen=True)
class OpenedRedis:
    client: RedisClient
    close: Callable[[], Awaitable[None]]


def open_redis(url: str, *, cluster: bool, timeout: float, **connection: Any) -> OpenedRedis:
    """A client for `url` (nothing is connected yet); `connection` goes to every data connection."""
    connection.update(socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30)
    if cluster:
        # Its own retries (after a refresh of the slots' owners) stay: the breaker's timeout bounds them.
        first_node_url, nodes = split_hosts(url)
        others = [ClusterNode(host, port) for host, port in nodes[1:]]
        cluster_client = RedisCluster.from_url(first_node_url, startup_nodes=others, **connection)
        return OpenedRedis(cluster_client, cluster_client.aclose)
    # One server answers or does not: no retry, the breaker decides when to ask again.
    connection["retry"] = Retry(NoBackoff(), 0)
    if is_sentinel_url(url):
        return _open_sentinel_master(url, timeout, connection)
    client = redis_asyncio.Redis.from_url(url, **connection)
    return OpenedRedis(client, client.aclose)


def _open_sentinel_master(url: str, timeout: float, connection: dict[str, Any]) -> OpenedRedis:
    address = parse_sentinel_url(url)
    sentinel_connection = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "password": address.sentinel_password,
        "retry": Retry(NoBackoff(), 0),
    }
    sentinel = Sentinel(address.sentinels, sentinel_kwargs=sentinel_connection)
    master = sentinel.master_for(
        address.service_name,
        db=address.db,
        username=address.username,
        password=address.password,
        **connection,
    )

    async def close() -> None:
        await master.aclose()
        await master.connection_pool.disconnect()  # redis-py 5 left the pool open
        for client in sentinel.sentinels:  # Sentinel.aclose() is newer than redis-py 5
            await client.aclose()

    return OpenedRedis(master, close)
