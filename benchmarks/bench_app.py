"""The app every benchmark drives, in four variants that differ only in what observes its errors.

- `bare`: the FastAPI app alone.
- `lark`: with LarkAlertMiddleware (no webhook: alerts go to the log; dedup window one hour).
- `sentry`: with sentry-sdk's FastAPI/Starlette integrations, default settings, tracing off,
  a DSN on a closed loopback port and a transport that drops everything.
- `base`: with a BaseHTTPMiddleware doing the same job as ours: the same dedup, the same capped
  capture of request and response bodies, the same hand-off to the alerter.
- `floor` (in process only, for reference): a pure ASGI middleware that reads the status and
  nothing else, the least any middleware that reports failing responses must cost.

`uvicorn --app-dir benchmarks bench_app:app` serves the variant named by BENCH_VARIANT.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lark_alert_middleware import ErrorEvent, LarkAlertMiddleware
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.build import build_pipeline
from lark_alert_middleware._pipeline.fingerprint import fingerprint_of
from lark_alert_middleware._records import NO_BODY
from lark_alert_middleware._sources.http import BodyBuffer
from lark_alert_middleware._sources.routes import route_template

VARIANTS = ("bare", "lark", "sentry", "base")
LABELS = {
    "bare": "bare",
    "lark": "lark-alert-middleware",
    "sentry": "sentry-sdk",
    "base": "BaseHTTPMiddleware",
    "floor": "status-only pure ASGI middleware",
}
WINDOW_SECONDS = 3600  # every repeat of the 404 falls in one dedup window
_STARLETTE_CALL = Starlette.__call__  # before sentry-sdk, set up later in the same process, patches it


class IsolatedFastAPI(FastAPI):
    """FastAPI calling Starlette's own `__call__`, so that sentry-sdk's patch of it passes this app by."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _STARLETTE_CALL(self, scope, receive, send)


def pin_middleware_classes(app: FastAPI) -> None:
    """Give each layer of a built stack a private subclass holding today's `__call__`.

    sentry-sdk patches `__call__` of Starlette's middleware classes process-wide when its app
    builds a stack; pinned layers keep running the unpatched code.
    """
    layer: Any = app.middleware_stack
    while not isinstance(layer, Router):
        cls = type(layer)
        layer.__class__ = type(cls.__name__, (cls,), {"__call__": cls.__call__, "__module__": cls.__module__})
        layer = layer.app


def init_sentry() -> None:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    class DropEverything(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            return None

    # Port 9 on loopback has no listener, and the transport would not use it anyway.
    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=DropEverything, traces_sample_rate=None)


class StatusOnlyMiddleware:
    """Times the request and reads the response status through a closure around `send`; no more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.alerting = frozenset(range(400, 600))
        self.failing_seconds = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        def read_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        await self.app(scope, receive, read_status)
        if status in self.alerting:
            self.failing_seconds += time.perf_counter() - started


class CapturingMiddleware(BaseHTTPMiddleware):
    """LarkAlertMiddleware's job done the usual way, with BaseHTTPMiddleware: the comparison."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        settings = load_settings(rate_limit=WINDOW_SECONDS)
        self.pipeline = build_pipeline(settings)
        self.alerting = settings.status_codes
        self.limit = settings.max_body_bytes

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        request_body = BodyBuffer(self.limit)
        if request.method not in ("GET", "HEAD"):
            request_body.add(await request.body())  # Starlette hands the body on to the app
        try:
            response = await call_next(request)
        except Exception as exception:
            self.report(request, 500, exception, started, request_body, None)
            raise
        status = response.status_code
        if status not in self.alerting:
            return response
        fingerprint = fingerprint_of(request.method, route_template(request.scope), status, None)
        if self.pipeline.is_reported(fingerprint):
            return response
        response_body = BodyBuffer(self.limit)
        body = response.body_iterator  # type: ignore[attr-defined]

        async def tee() -> AsyncIterator[bytes]:
            async for chunk in body:
                response_body.add(chunk)
                yield chunk
            self.report(request, status, None, started, request_body, response_body)

        response.body_iterator = tee()  # type: ignore[attr-defined]
        return response

    def report(
        self,
        request: Request,
        status: int,
        exception: BaseException | None,
        started: float,
        request_body: BodyBuffer,
        response_body: BodyBuffer | None,
    ) -> None:
        fingerprint = fingerprint_of(request.method, route_template(request.scope), status, exception)
        if self.pipeline.is_reported(fingerprint):
            return
        duration = time.perf_counter() - started
        headers = tuple((name, value) for name, value in request.headers.items())
        client = request.client
        event = ErrorEvent(
            timestamp=time.time() - duration,
            duration_seconds=duration,
            method=request.method,
            scheme=request.url.scheme,
            path=request.url.path,
            route=route_template(request.scope),
            query_string=request.url.query,
            headers=headers,
            client=f"{client.host}:{client.port}" if client else None,
            request_id=request.headers.get("x-request-id", "-"),
            status_code=status,
            request_body=request_body.freeze(request.headers.get("content-type"), None),
            response_body=response_body.freeze(None, None) if response_body else NO_BODY,
            exception=exception,
        )
        self.pipeline.submit(fingerprint, event)


def build_app(variant: str) -> FastAPI:
    """The benchmark app; for `sentry`, call `init_sentry()` first."""
    app = FastAPI() if variant == "sentry" else IsolatedFastAPI()

    @app.get("/ok/{item_id}")
    async def ok(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/missing/{item_id}")
    async def missing(item_id: int) -> None:
        raise HTTPException(status_code=404, detail="not found")

    if variant == "lark":
        app.add_middleware(LarkAlertMiddleware, rate_limit=WINDOW_SECONDS)
    elif variant == "base":
        app.add_middleware(CapturingMiddleware)
    elif variant == "floor":
        app.add_middleware(StatusOnlyMiddleware)
    return app


logging.getLogger("lark_alert_middleware").setLevel(
    logging.ERROR
)  # the first 404's alert, not a line per run

if "BENCH_VARIANT" in os.environ:
    if os.environ["BENCH_VARIANT"] == "sentry":
        init_sentry()
    app = build_app(os.environ["BENCH_VARIANT"])
