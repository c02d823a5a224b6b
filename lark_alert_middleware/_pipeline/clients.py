"""The process's network clients: one httpx.AsyncClient, one Redis client per URL and topology.

They live on the alerter thread's loop and are shared by every middleware instance, so an
app created and dropped per test leaves no socket behind; they are closed at exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from .._version import __version__
from .loop import LoopLocal, background_loop
from .redis_client import OpenedRedis, RedisClient, open_redis

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
HTTP_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4, keepalive_expiry=30.0)


def redis_driver_info() -> dict[str, Any]:
    """How our Redis connections introduce themselves (CLIENT SETINFO): as this library, over redis-py.

    Built once: without it, redis-py since DriverInfo looks its own version up in the package
    metadata for every new connection, milliseconds of CPU while the app is serving a storm.
    """
    try:
        from redis import DriverInfo
    except ImportError:  # older redis-py: it looked its version up once, at import
        return {}
    return {"driver_info": DriverInfo().add_upstream_driver("lark-alert-middleware", __version__)}


@dataclass
class _Clients:
    http: httpx.AsyncClient | None = None
    redis: dict[tuple[str, bool, float], OpenedRedis] = field(default_factory=dict)


class SharedClients:
    """Created lazily on the alerter loop; a new loop (after a fork) gets new clients."""

    def __init__(self) -> None:
        self._clients = LoopLocal(_Clients)
        self._redis_driver_info = redis_driver_info()

    def http(self) -> httpx.AsyncClient:
        clients = self._clients.get()
        if clients.http is None:
            clients.http = httpx.AsyncClient(
                timeout=HTTP_TIMEOUT,
                limits=HTTP_LIMITS,
                follow_redirects=False,
                headers={"User-Agent": f"lark-alert-middleware/{__version__}"},
            )
        return clients.http

    def redis(self, url: str, timeout: float, *, cluster: bool = False) -> RedisClient:
        """The client for `url` (a cluster's when `cluster`), made on first use."""
        clients = self._clients.get()
        opened = clients.redis.get((url, cluster, timeout))
        if opened is None:
            opened = clients.redis[(url, cluster, timeout)] = open_redis(
                url, cluster=cluster, timeout=timeout, **self._redis_driver_info
            )
        return opened.client

    async def close(self) -> None:
        clients = self._clients.current()
        if clients is None:
            return
        http, redis_clients = clients.http, list(clients.redis.values())
        clients.http, clients.redis = None, {}
        if http is not None:
            await http.aclose()
        for opened in redis_clients:
            await opened.close()


shared_clients = SharedClients()
background_loop.close_at_exit(shared_clients.close)
