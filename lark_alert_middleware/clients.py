"""The process's network clients: one httpx.AsyncClient, one Redis client per URL.

They live on the alerter thread's loop and are shared by every middleware instance, so an
app created and dropped per test leaves no socket behind; they are closed at exit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from . import __version__
from .background import background_loop

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


class SharedClients:
    """Created lazily on the alerter loop; a new loop (after a fork) gets new clients."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._redis: dict[tuple[str, float], redis_asyncio.Redis] = {}
        self._redis_driver_info = redis_driver_info()

    def _for_this_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Clients of another loop belong to a parent process; drop them without closing.
            self._loop, self._http, self._redis = loop, None, {}

    def http(self) -> httpx.AsyncClient:
        self._for_this_loop()
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=HTTP_TIMEOUT,
                limits=HTTP_LIMITS,
                follow_redirects=False,
                headers={"User-Agent": f"lark-alert-middleware/{__version__}"},
            )
        return self._http

    def redis(self, url: str, timeout: float) -> redis_asyncio.Redis:
        self._for_this_loop()
        client = self._redis.get((url, timeout))
        if client is None:
            client = redis_asyncio.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=30,
                **self._redis_driver_info,
            )
            self._redis[(url, timeout)] = client
        return client

    async def close(self) -> None:
        http, clients = self._http, list(self._redis.values())
        self._http, self._redis = None, {}
        if http is not None:
            await http.aclose()
        for client in clients:
            await client.aclose()


shared_clients = SharedClients()
background_loop.close_at_exit(shared_clients.close)
