"""The relay: Alertmanager, Grafana, Seq and any webhook become deduplicated Lark cards.

    export LARK_WEBHOOK_URL=… LARK_RELAY_TOKEN=$(openssl rand -hex 16) REDIS_URL=redis://redis:6379/0
    lark-alert relay --host 0.0.0.0 --port 8025     # or: uvicorn lark_alert_middleware.relay:app

`app` is built from the environment when first used; `create_relay(**options)` builds one in
code, with the middleware's keyword options (`relay_token=`, `webhook_url=`, `redis_url=`...).
A relay shares the middleware's pipeline: its dedup windows, repeat counts, Lark budget and
digests (see the README, "The relay").
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Receive, Scope, Send
from typing_extensions import Unpack

from ._config import AlertOptions, ConfigurationError, load_settings
from ._sources.relay.app import Relay
from ._sources.relay.body import answer

__all__ = ["Relay", "create_relay"]  # and `app`, built when first used

logger = logging.getLogger("lark_alert_middleware")

app: Relay | RefusingRelay  # built on first use: importing this module reads nothing


def create_relay(**options: Unpack[AlertOptions]) -> Relay:
    """A relay from the environment and `options`; ConfigurationError names what is wrong
    (a relay without `LARK_RELAY_TOKEN` / `relay_token=` does not start)."""
    return Relay(load_settings(**options))


class RefusingRelay:
    """What `app` is when the configuration is wrong: start-up fails with the reason, and so
    does every request (503), so that the server never runs a relay that cannot work."""

    def __init__(self, error: ConfigurationError) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": str(self.error)})
        elif scope["type"] == "http":
            await answer(send, 503, {"error": str(self.error)})


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global app
    try:
        app = create_relay()
    except ConfigurationError as error:
        logger.error("%s", error)
        app = RefusingRelay(error)
    return app
