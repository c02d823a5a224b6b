"""The ASGI middleware: tees receive and send, builds an event for failing requests, hands it off.

Nothing here waits on the network. A request that succeeds costs a timestamp, one small
closure and a status lookup; a repeat of a known error adds a dictionary lookup and two counts.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import logging
import re
import time
import uuid
from collections.abc import Awaitable
from time import monotonic, perf_counter
from typing import Any

import anyio.to_thread
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import Unpack

from .alerter import Alerter
from .card import CardRenderer
from .config import AlertOptions, AlertSettings, ConfigurationError, load_settings
from .event import NO_BODY, BodyBuffer, CapturedBody, ErrorEvent
from .fingerprint import (
    STANDARD_METHODS,
    FingerprintFunction,
    default_fingerprint,
    fingerprint_of,
    grouped_method,
)
from .redact import Redactor, ScrubHook
from .routes import is_mounted_more_than_once, route_template
from .sample import sample_view
from .suppression import NO_WINDOW
from .tracing import current_trace_id
from .view import CardSettings

logger = logging.getLogger("lark_alert_middleware")

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
# Requests that carry no body by convention: their `receive` is passed through unwrapped.
BODYLESS_METHODS = frozenset({"GET", "HEAD"})
# Distinct (route, method, status, mount) errors kept on the request path; real apps have far fewer.
KNOWN_ERRORS_REMEMBERED = 1024
# The mounts of one route object mounted in several places, kept on the request path.
MOUNTS_REMEMBERED = 64
# How much of an unusual method an event keeps: a client chooses it.
SENT_METHOD_CHARACTERS = 40
# A custom fingerprint is cut to this many characters: it may be built from request data.
CUSTOM_FINGERPRINT_CHARACTERS = 1000
# How long lifespan start-up waits for the alerter thread to import, load certificates, connect.
WARM_UP_WAIT_SECONDS = 3.0


# Route object (by id), method, status, and the app's root path.
ErrorKey = tuple[int, str, int, str | None]


class KnownError:
    """A failing route, method and status as the request path remembers it, with its dedup window."""

    __slots__ = ("by_mount", "fingerprint", "route", "window")

    def __init__(self, route: object, fingerprint: str) -> None:
        self.route = route
        self.fingerprint = fingerprint
        self.window = NO_WINDOW  # its dedup window, once one is found open
        # For a route object mounted in several places: the error of each mount (root path).
        self.by_mount: dict[str, KnownError] | None = None


class RequestBodyTee:
    """The app's `receive`: passes every message through unchanged, keeping the body's first bytes."""

    __slots__ = ("_receive", "body")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.body = BodyBuffer(limit)

    async def __call__(self) -> Message:
        message = await self._receive()
        chunk = message.get("body")
        if chunk:
            self.body.add(chunk)
        return message


class ResponseCapture:
    """What a failing response sent: how its body is typed and encoded, and the body's first bytes."""

    __slots__ = ("body", "content_encoding", "content_type")

    def __init__(self, headers: Any, limit: int) -> None:
        # Read now: middlewares outside ours may edit the header list after it passed (GZip does).
        self.content_type = _header(headers, b"content-type")
        self.content_encoding = _header(headers, b"content-encoding")
        self.body = BodyBuffer(limit)

    def add(self, message: Message) -> None:
        chunk = message.get("body")
        if chunk:
            self.body.add(chunk)


class LarkAlertMiddleware:
    """Reports failing requests of an ASGI app to a Lark group; changes nothing the client sees.

    Options come from the environment (see the README) and can be overridden by keyword:
    `LarkAlertMiddleware(app, webhook_url=..., rate_limit=30)`. `fingerprint` replaces the
    rule that groups repeats; `scrub` is applied to every text after built-in redaction.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        fingerprint: FingerprintFunction | None = None,
        scrub: ScrubHook | None = None,
        **options: Unpack[AlertOptions],
    ) -> None:
        self.app = app
        self.alerter: Alerter | None = None
        self.configuration_error: ConfigurationError | None = None
        self._fingerprint = fingerprint
        self._known_errors: dict[ErrorKey, KnownError] = {}
        try:
            self.settings = load_settings(**options)
            self._configure(self.settings, scrub)
        except ConfigurationError as error:
            # Raised at lifespan start-up (so the server refuses to start) and on requests.
            self.configuration_error = error
            logger.error("%s", error)

    def _configure(self, settings: AlertSettings, scrub: ScrubHook | None) -> None:
        self._alerting_statuses = settings.status_codes
        self._body_limit = settings.max_body_bytes
        self._excluded = _compile_patterns(settings.exclude_paths)
        self._service_known = settings.service is not None
        if not settings.enabled:
            return
        renderer = CardRenderer(settings.template)
        redactor = Redactor(settings.redact_fields, scrub)
        renderer.check(sample_view(redactor), CardSettings("service", settings.environment))
        self.alerter = Alerter(settings, renderer=renderer, redactor=redactor)
        self._windows = self.alerter.windows
        self._all_repeats = self._windows.all_repeats
        if settings.webhook_url is None:
            logger.warning(
                "lark_alert_middleware: LARK_WEBHOOK_URL is not set; alerts are written to this log "
                "at WARNING instead of posted to Lark"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.alerter is None:
            if self.alerter is None and self.configuration_error is None:
                await self.app(scope, receive, send)  # disabled: as if it were not there
            else:
                await self._not_observed(scope, receive, send)
            return

        # Every request pays for what follows: few locals, few cells, no objects it does not need.
        started = perf_counter()
        status = 0
        capture: ResponseCapture | None = None
        request_tee = None
        if scope["method"] not in BODYLESS_METHODS:
            receive = request_tee = RequestBodyTee(receive, self._body_limit)

        def send_and_capture(message: Message) -> Awaitable[None]:
            nonlocal status, capture
            if capture is not None:
                capture.add(message)
            elif not status and message["type"] == "http.response.start":
                status = message["status"]
                if status in self._alerting_statuses and not self._is_known_repeat(scope, status):
                    capture = ResponseCapture(message.get("headers"), self._body_limit)
            return send(message)

        try:
            await self.app(scope, receive, send_and_capture)
        except ClientDisconnect:
            raise  # the client went away: nothing failed on our side
        except Exception as exception:
            # What ServerErrorMiddleware will send if nothing was sent yet.
            self._report(scope, status or 500, exception, started, request_tee, capture)
            raise
        if capture is not None:
            self._report(scope, status, None, started, request_tee, capture)

    def _is_known_repeat(self, scope: Scope, status: int) -> bool:
        """An excluded path, or an error whose window this process knows is open (then counted).

        The error is remembered per route object, method and status, with its window: a storm
        of one error costs one dictionary lookup and two increments here.
        """
        if self._excluded is not None and self._excluded.match(scope.get("path", "")):
            return True
        if self._fingerprint is not None:
            return False  # a custom fingerprint needs the whole event
        route = scope.get("route")
        method = scope["method"]
        if method not in STANDARD_METHODS:
            method = grouped_method(method, route)  # so that odd methods cannot grow the table
        key = (id(route), method, status, scope.get("app_root_path"))
        known = self._known_errors.get(key)
        if known is None or known.route is not route:  # new, or another route reusing a dead one's id
            known = self._remember(key, route, scope, status)
        if known.by_mount is not None:
            known = self._in_mount(known, scope, method, status)
        window = known.window
        now = monotonic()
        if window.ends <= now:
            # Ended, or not open when last looked at: the alerter may have opened it since.
            window = known.window = self._windows.window_of(known.fingerprint)
            if window.ends <= now:
                return False
        next(window.steps)
        next(self._all_repeats.steps)
        return True

    def _remember(self, key: ErrorKey, route: object, scope: Scope, status: int) -> KnownError:
        if len(self._known_errors) >= KNOWN_ERRORS_REMEMBERED:
            self._known_errors.clear()  # routes created on the fly: start over rather than grow
        known = self._known_errors[key] = KnownError(
            route, fingerprint_of(key[1], route_template(scope), status, None)
        )
        if is_mounted_more_than_once(scope):
            known.by_mount = {}
        return known

    def _in_mount(self, known: KnownError, scope: Scope, method: str, status: int) -> KnownError:
        """The error of this mount of a route object mounted in several places."""
        assert known.by_mount is not None
        root_path = scope.get("root_path", "")
        in_mount = known.by_mount.get(root_path)
        if in_mount is None:
            if len(known.by_mount) >= MOUNTS_REMEMBERED:
                known.by_mount.clear()  # mount parameters' values: start over rather than grow
            fingerprint = fingerprint_of(method, route_template(scope), status, None)
            in_mount = known.by_mount[root_path] = KnownError(known.route, fingerprint)
        return in_mount

    def _report(
        self,
        scope: Scope,
        status: int,
        exception: BaseException | None,
        started: float,
        request_tee: RequestBodyTee | None,
        capture: ResponseCapture | None,
    ) -> None:
        alerter = self.alerter
        assert alerter is not None
        try:
            if self._excluded is not None and self._excluded.match(scope.get("path", "")):
                return
            duration = time.perf_counter() - started
            request_body = request_tee.body if request_tee is not None else None
            event = None
            if self._fingerprint is None:
                method = grouped_method(scope["method"], scope.get("route"))
                fingerprint = fingerprint_of(method, route_template(scope), status, exception)
            else:
                event = self._capture(scope, status, exception, duration, request_body, capture)
                fingerprint = self._custom_fingerprint(event)
            if self._windows.count_repeat(fingerprint, monotonic()):
                return
            if event is None:
                event = self._capture(scope, status, exception, duration, request_body, capture)
            alerter.submit(fingerprint, event)
        except Exception:
            alerter.counters.add("dropped")
            logger.exception("lark_alert_middleware: could not capture a failing request")

    def _custom_fingerprint(self, event: ErrorEvent) -> str:
        assert self._fingerprint is not None
        try:
            fingerprint = str(self._fingerprint(event))
        except Exception:
            logger.exception("lark_alert_middleware: the fingerprint function failed; using the default")
            return default_fingerprint(event)
        # Made from request data, it may be long or hold lone surrogates: keys and cards need text.
        return as_text(fingerprint[:CUSTOM_FINGERPRINT_CHARACTERS])

    def _capture(
        self,
        scope: Scope,
        status: int,
        exception: BaseException | None,
        duration: float,
        request_body: BodyBuffer | None,
        capture: ResponseCapture | None,
    ) -> ErrorEvent:
        assert self.alerter is not None
        if not self._service_known:
            self._learn_service(scope)
        headers = tuple(
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in scope.get("headers") or ()
        )
        client = scope.get("client")
        method = grouped_method(scope["method"], scope.get("route"))
        return ErrorEvent(
            timestamp=time.time() - duration,
            duration_seconds=duration,
            method=method,
            sent_method=None if method == scope["method"] else scope["method"][:SENT_METHOD_CHARACTERS],
            scheme=scope.get("scheme", "http"),
            path=scope.get("path", ""),
            route=route_template(scope),
            query_string=(scope.get("query_string") or b"").decode("latin-1"),
            headers=headers,
            client=f"{client[0]}:{client[1]}" if client else None,
            request_id=_request_id(headers),
            status_code=status,
            request_body=_freeze(request_body, headers),
            response_body=_freeze_response(capture),
            exception=exception,
            trace_id=current_trace_id(headers),
        )

    def _learn_service(self, scope: Scope) -> None:
        assert self.alerter is not None
        title = getattr(scope.get("app"), "title", None)
        if isinstance(title, str) and title.strip():
            self.alerter.service = as_text(title.strip()[:200])
        self._service_known = True

    async def _not_observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websockets, lifespan, a disabled middleware, or a configuration that must not start."""
        if self.configuration_error is not None:
            await self._refuse_to_start(scope, receive, send)
            return
        if scope["type"] != "lifespan" or self.alerter is None:
            await self.app(scope, receive, send)
            return
        alerter = self.alerter
        if not self._service_known:
            self._learn_service(scope)
        warming_up = alerter.warm_up()

        async def send_when_ready(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                # Traffic starts once the alerter is ready, so no request shares the CPU with that.
                await anyio.to_thread.run_sync(concurrent.futures.wait, [warming_up], WARM_UP_WAIT_SECONDS)
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await alerter.drain_at_shutdown()
            await send(message)

        await self.app(scope, receive, send_when_ready)

    async def _refuse_to_start(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.configuration_error is not None
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": str(self.configuration_error)})
        raise self.configuration_error


def as_text(text: str) -> str:
    """`text`, with any lone surrogate (undecodable bytes) written as `\\udcxx`, so UTF-8 can carry it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _request_id(headers: tuple[tuple[str, str], ...]) -> str:
    for name, value in headers:
        if name == "x-request-id" and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _header(headers: Any, wanted: bytes) -> str | None:
    for name, value in headers or ():
        if name.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _freeze(buffer: BodyBuffer | None, headers: tuple[tuple[str, str], ...]) -> CapturedBody:
    if buffer is None or buffer.size == 0:
        return NO_BODY
    content_type = next((value for name, value in headers if name == "content-type"), None)
    encoding = next((value for name, value in headers if name == "content-encoding"), None)
    return buffer.freeze(content_type, encoding)


def _freeze_response(capture: ResponseCapture | None) -> CapturedBody:
    if capture is None or capture.body.size == 0:
        return NO_BODY
    return capture.body.freeze(capture.content_type, capture.content_encoding)


def _compile_patterns(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))
