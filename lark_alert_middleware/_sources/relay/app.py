"""The relay's ASGI app: authenticate, read a bounded body, validate, hand off, answer 202.

Each POST is answered as soon as its payload is validated and handed off: deciding which
alerts changed, and posting their cards, happens on the alerter thread. Nothing a client
sends makes a 500: a wrong token is a 401, a body over 1 MiB a 413, a body that is not the
endpoint's JSON a 400 naming the field.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from ..._config import AlertSettings, ConfigurationError
from ..._lark.urls import safe_url
from ..._pipeline.build import build_pipeline
from ..._pipeline.pipeline import Pipeline
from . import alertmanager, generic, grafana, seq
from .alerts import Notification
from .auth import TokenCheck
from .body import MAX_BODY_BYTES, BodyTooLarge, ClientGone, answer, read_body
from .forward import Forwarder
from .logs import mask_in_logs
from .payload import PayloadError
from .recent import RecentPayloads

logger = logging.getLogger("lark_alert_middleware")

DEFAULT_SERVICE = "relay"
# How long lifespan start-up waits for the alerter thread to load the template and connect.
WARM_UP_WAIT_SECONDS = 3.0
UNAUTHORISED = {
    "error": "missing or wrong token: send the relay's token (LARK_RELAY_TOKEN) as "
    "'Authorization: Bearer <token>', or as ?token=<token>"
}
WWW_AUTHENTICATE = ((b"www-authenticate", b'Bearer realm="lark-alert relay"'),)


def relay_settings(settings: AlertSettings) -> AlertSettings:
    """The settings of a relay: ConfigurationError, saying how to fix it, without a token;
    the card template is `LARK_RELAY_TEMPLATE` when set, and there are no recovered cards."""
    if settings.relay_token is None:
        raise ConfigurationError(
            "LARK_RELAY_TOKEN is not set, and the relay does not start without one: every POST must "
            "carry it. Make one with `export LARK_RELAY_TOKEN=$(openssl rand -hex 16)` (or pass "
            "relay_token= to create_relay) and give the same value to Alertmanager, Grafana and Seq"
        )
    # Alerts are reported when they change state, so one still firing is quiet to the pipeline:
    # recovered cards would be wrong, and the relay sends its own green card when one resolves.
    update: dict[str, object] = {"recovery_after": None}
    if settings.relay_template is not None:
        update["template"] = settings.relay_template
    return settings.model_copy(update=update)


@dataclass(frozen=True, slots=True)
class Endpoint:
    parse: Callable[[bytes], Notification]
    signed_by_grafana: bool = False


class Relay:
    """The relay: `POST /alertmanager`, `/grafana`, `/seq`, `/generic`, and `GET /healthz`.

    Built by `lark_alert_middleware.relay.create_relay(**options)` (or as `...relay:app`, from
    the environment); raises ConfigurationError naming what is wrong.
    """

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings = relay_settings(settings)
        assert settings.relay_token is not None  # relay_settings refuses a relay without one
        token = settings.relay_token.get_secret_value()
        grafana_secret = settings.relay_grafana_secret
        mask_in_logs(token, *((grafana_secret.get_secret_value(),) if grafana_secret else ()))
        self.pipeline: Pipeline = build_pipeline(settings)
        service = settings.service or DEFAULT_SERVICE
        self.pipeline.name_service(service)
        self.forwarder = Forwarder(self.pipeline, settings, service)
        self._token = TokenCheck(token)
        self._grafana_secret = grafana_secret.get_secret_value().encode() if grafana_secret else None
        self._template_error: ConfigurationError | None = None
        self._enabled = settings.enabled
        if not settings.enabled:
            logger.warning(
                "lark_alert_middleware: LARK_ALERT_ENABLED is false: the relay takes alerts, cards none"
            )
        self._endpoints = {
            "/alertmanager": Endpoint(RecentPayloads(alertmanager.notification_of)),
            "/grafana": Endpoint(RecentPayloads(grafana.notification_of), signed_by_grafana=True),
            "/seq": Endpoint(
                RecentPayloads(functools.partial(seq.notification_of, seq_url=settings.seq_url))
            ),
            "/generic": Endpoint(RecentPayloads(generic.notification_of)),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._serve(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        # A websocket is not accepted: returning refuses it.

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every alert received so far is decided and posted; False on timeout."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        return self.forwarder.flush(timeout) and self.pipeline.flush(timeout)

    # -- HTTP ----------------------------------------------------------------------------------
    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        method: str = scope["method"]
        if path == "/healthz":
            if method in ("GET", "HEAD"):
                await self._health(send)
            else:
                await answer(send, 405, {"error": "GET /healthz"}, ((b"allow", b"GET, HEAD"),))
            return
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            await answer(send, 404, {"error": f"no such endpoint; POST to {', '.join(self._endpoints)}"})
            return
        if method != "POST":
            await answer(send, 405, {"error": f"POST {path}"}, ((b"allow", b"POST"),))
            return
        authorization = length = signature = signed_at = None
        expects_continue = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == b"expect":
                expects_continue = value.lower() == b"100-continue"
            elif name == grafana.SIGNATURE_HEADER:
                signature = value
            elif name == grafana.TIMESTAMP_HEADER:
                signed_at = value
        if not self._token.allows(authorization, scope.get("query_string", b"")):
            await answer(send, 401, UNAUTHORISED, WWW_AUTHENTICATE)
            return
        try:
            body = await read_body(receive, _length(length), expects_continue)
        except ClientGone:
            return
        except BodyTooLarge:
            await answer(send, 413, {"error": "the body is over 1 MiB"}, ((b"connection", b"close"),))
            return
        if (
            endpoint.signed_by_grafana
            and self._grafana_secret is not None
            and not grafana.signature_is_valid(self._grafana_secret, body, signature, signed_at)
        ):
            await answer(send, 401, {"error": _BAD_SIGNATURE})
            return
        try:
            notification = endpoint.parse(body)
        except PayloadError as error:
            await answer(send, 400, {"error": str(error)})
            return
        if self._enabled:
            self.forwarder.forward(notification)
        await answer(send, 202, {"accepted": len(notification.alerts)})

    async def _health(self, send: Send) -> None:
        settings = self.settings
        webhook = settings.webhook_url
        redis_url = settings.redis_url
        document = {
            "status": "ok" if self._template_error is None else "misconfigured",
            "webhook": safe_url(webhook.get_secret_value(), webhook=True)
            if webhook
            else "not set: cards are written to the log",
            "redis": safe_url(redis_url.get_secret_value())
            if redis_url
            else "not set: state and dedup are kept in this process",
            "redis_reachable": None if redis_url is None else not self.forwarder.redis_in_outage,
            "endpoints": list(self._endpoints),
        }
        if self._template_error is not None:
            document["error"] = str(self._template_error)
        await answer(send, 200 if self._template_error is None else 503, document)

    # -- lifespan ------------------------------------------------------------------------------
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                error = await self._start()
                if error is not None:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await anyio.to_thread.run_sync(self.forwarder.flush, self.settings.shutdown_timeout)
                await self.pipeline.drain_at_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> ConfigurationError | None:
        """Warm the alerter up (template, connections); the template's error, if it cannot be used."""
        warming_up = self.pipeline.warm_up()
        await anyio.to_thread.run_sync(concurrent.futures.wait, [warming_up], WARM_UP_WAIT_SECONDS)
        if warming_up.done() and isinstance(warming_up.exception(), ConfigurationError):
            self._template_error = warming_up.exception()  # type: ignore[assignment]
            return self._template_error
        webhook, redis_url = self.settings.webhook_url, self.settings.redis_url
        logger.info(
            "lark_alert_middleware: relay serving %s; cards to %s; state in %s",
            ", ".join(self._endpoints),
            safe_url(webhook.get_secret_value(), webhook=True) if webhook else "the log",
            safe_url(redis_url.get_secret_value()) if redis_url else "this process",
        )
        return None


_BAD_SIGNATURE = (
    "X-Grafana-Alerting-Signature is missing or wrong: set the contact point's HMAC secret to "
    "LARK_RELAY_GRAFANA_SECRET (and its timestamp header, if any, to X-Grafana-Alerting-Timestamp)"
)


def _length(value: bytes | None) -> int | None:
    """The declared length; None when there is none or it is not a number. (More digits than
    any real length are read as too large, without making a number of them.)"""
    if value is None or not value.strip().isdigit():
        return None
    digits = value.strip()
    return int(digits) if len(digits) <= 12 else MAX_BODY_BYTES + 1
