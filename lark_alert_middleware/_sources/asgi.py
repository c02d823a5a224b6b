"""The ASGI middleware: a source of errors. It tees receive and send, and hands failing requests over.

It picks its mode once, at construction: a pass-through when disabled, refusing to start when
the configuration is bad, observing otherwise. Nothing here waits on the network, and nothing
is done at construction that an app could notice (Starlette builds middlewares inside an app's
first call): the card template is loaded and checked at lifespan start-up, on the alerter
thread, or else at the first alert. A request that succeeds costs a timestamp, one small
closure and a status lookup; a repeat of a known error adds a dictionary lookup and two counts.
Besides requests (and what fails after their response, `after_response.py`), it watches
websocket sessions (`websocket.py`) and the lifespan start-up (`startup.py`).
"""

from __future__ import annotations

import concurrent.futures
import enum
import fnmatch
import logging
import re
import time
from collections.abc import Awaitable
from time import perf_counter

import anyio.to_thread
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import Unpack

from .._card.redact import ScrubHook
from .._config import AlertOptions, ConfigurationError, load_settings
from .._pipeline.build import build_pipeline
from .._pipeline.current import current_pipeline
from .._pipeline.fingerprint import (
    STANDARD_METHODS,
    FingerprintFunction,
    after_response_fingerprint,
    fingerprint_of,
    grouped_method,
)
from .._pipeline.pipeline import Pipeline
from .._records import ErrorEvent, as_text
from .._routes_config import captured_statuses
from .after_response import Moment, after_response_event, moment_of
from .context import request_scope, tracking
from .http import RequestBodyTee, ResponseCapture, RouteError, captured_event
from .logs import LogCapture
from .reported import mark_reported
from .routes import is_mounted_more_than_once, route_template
from .startup import observe_startup
from .websocket import Session, observe_websocket, websocket_event

logger = logging.getLogger("lark_alert_middleware")

# Requests that carry no body by convention: their `receive` is passed through unwrapped.
BODYLESS_METHODS = frozenset({"GET", "HEAD"})
# Distinct (route, method, status) errors kept on the request path; real apps have far fewer.
KNOWN_ERRORS_REMEMBERED = 1024
# The mounts of one route object mounted in several places, kept on the request path.
MOUNTS_REMEMBERED = 64
# How long lifespan start-up waits for the alerter thread to import, load certificates, connect.
WARM_UP_WAIT_SECONDS = 3.0

# Route object (by id), method, status, and the app's root path.
ErrorKey = tuple[int, str, int, str | None]


class Mode(enum.Enum):
    PASSING = "passing"  # disabled: as if it were not there
    REFUSING = "refusing"  # bad configuration: start-up fails, and so does every request
    OBSERVING = "observing"


class LarkAlertMiddleware:
    """Reports failing requests of an ASGI app to a Lark group; changes nothing the client sees.

    Options come from the environment (see the README) and can be overridden by keyword:
    `LarkAlertMiddleware(app, webhook_url=..., rate_limit=30)`. `fingerprint` replaces the
    rule that groups repeats; `scrub` is applied to every text after built-in redaction.
    """

    _pipeline: Pipeline  # in the observing mode only
    _logs: LogCapture | None  # LARK_ALERT_CAPTURE_LOGS, in the observing mode only

    def __init__(
        self,
        app: ASGIApp,
        *,
        fingerprint: FingerprintFunction | None = None,
        scrub: ScrubHook | None = None,
        **options: Unpack[AlertOptions],
    ) -> None:
        self.app = app
        self.alerter: Pipeline | None = None  # the pipeline, for `stats()` and `flush()`
        self._refusal: ConfigurationError | None = None
        self._fingerprint = fingerprint
        self._known_errors: dict[ErrorKey, RouteError] = {}
        self._observing = False  # the mode, as the request path reads it
        try:
            settings = load_settings(**options)
        except ConfigurationError as error:
            # Raised at lifespan start-up (so the server refuses to start) and on requests.
            self._mode, self._refusal = Mode.REFUSING, error
            logger.error("%s", error)
            return
        self.settings = settings
        if not settings.enabled:
            self._mode = Mode.PASSING
            return
        self._mode = Mode.OBSERVING
        self._observing = True
        self._alerting_statuses = captured_statuses(settings.status_codes, settings.routes)
        self._body_limit = settings.max_body_bytes
        self._excluded = _compile_patterns(settings.exclude_paths)
        self._service_known = settings.service is not None
        self._pipeline = self.alerter = build_pipeline(settings, scrub=scrub, fingerprint=fingerprint)
        self._count_if_reported = self._pipeline.count_if_reported  # bound once: the request path's call
        current_pipeline.register_app(self._pipeline)
        self._logs = None
        if settings.capture_logs is not None:
            self._logs = LogCapture(self._pipeline, settings.capture_logs)
        if settings.webhook_url is None:
            logger.warning(
                "lark_alert_middleware: LARK_WEBHOOK_URL is not set; alerts are written to this log "
                "at WARNING instead of posted to Lark"
            )

    @property
    def configuration_error(self) -> ConfigurationError | None:
        """What is wrong with the configuration, if anything (the template is checked when first asked)."""
        if self._refusal is not None or self._mode is not Mode.OBSERVING:
            return self._refusal
        try:
            self._pipeline.check_cards()
        except ConfigurationError as error:
            return error
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._observing:
            if self._mode is Mode.PASSING:
                await self.app(scope, receive, send)
            else:
                await self._not_observed(scope, receive, send)
            return

        # Every request pays for what follows: few locals, few cells, no objects it does not need.
        started = perf_counter()
        status = 0
        capture: ResponseCapture | None = None
        last_sent: Message | None = None  # says, if the app raises, whether the response was whole
        request_tee = None
        if scope["method"] not in BODYLESS_METHODS:
            receive = request_tee = RequestBodyTee(receive, self._body_limit)

        def send_and_capture(message: Message) -> Awaitable[None]:
            nonlocal status, capture, last_sent
            last_sent = message
            if capture is not None:
                capture.add(message)
            elif not status and message["type"] == "http.response.start":
                status = message["status"]
                if status in self._alerting_statuses and not self._is_known_repeat(scope, status):
                    capture = ResponseCapture(message.get("headers"), self._body_limit)
            return send(message)

        try:
            # Log records say which request they were logged in, once a LarkAlertHandler wants to know.
            await (self._app_in_request if tracking.on else self.app)(scope, receive, send_and_capture)
        except ClientDisconnect:
            raise  # the client went away: nothing failed on our side
        except Exception as exception:
            self._report_exception(scope, status, exception, started, request_tee, capture, last_sent)
            raise
        if capture is not None:
            self._report(scope, status, None, started, request_tee, capture)

    async def _app_in_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with the request it serves in the context for log records captured meanwhile."""
        if self._logs is not None and self._logs.never_attached:
            self._logs.attach()  # no lifespan: at the first request
        in_request = request_scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            request_scope.reset(in_request)

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
        return self._count_if_reported(known)

    def _remember(self, key: ErrorKey, route: object, scope: Scope, status: int) -> RouteError:
        if len(self._known_errors) >= KNOWN_ERRORS_REMEMBERED:
            self._known_errors.clear()  # routes created on the fly: start over rather than grow
        known = self._known_errors[key] = RouteError(
            route, fingerprint_of(key[1], route_template(scope), status, None)
        )
        if is_mounted_more_than_once(scope):
            known.by_mount = {}
        return known

    def _in_mount(self, known: RouteError, scope: Scope, method: str, status: int) -> RouteError:
        """The error of this mount of a route object mounted in several places."""
        by_mount = known.by_mount
        assert by_mount is not None
        root_path = scope.get("root_path", "")
        in_mount = by_mount.get(root_path)
        if in_mount is None:
            if len(by_mount) >= MOUNTS_REMEMBERED:
                by_mount.clear()  # mount parameters' values: start over rather than grow
            fingerprint = fingerprint_of(method, route_template(scope), status, None)
            in_mount = by_mount[root_path] = RouteError(known.route, fingerprint)
        return in_mount

    def _report_exception(
        self,
        scope: Scope,
        status: int,
        exception: Exception,
        started: float,
        request_tee: RequestBodyTee | None,
        capture: ResponseCapture | None,
        last_sent: Message | None,
    ) -> None:
        """An exception escaped the app: a failing request, or a failure after its response."""
        moment = moment_of(status, last_sent, self._alerting_statuses)
        if moment is None:
            # What ServerErrorMiddleware will send if nothing was sent yet.
            self._report(scope, status or 500, exception, started, request_tee, capture)
            return
        if capture is not None:  # a whole alerting response, then its background task failed
            self._report(scope, status, None, started, request_tee, capture)
        self._report(scope, status, exception, started, request_tee, None, moment)

    def _report(
        self,
        scope: Scope,
        status: int,
        exception: BaseException | None,
        started: float,
        request_tee: RequestBodyTee | None,
        capture: ResponseCapture | None,
        after_response: Moment | None = None,
    ) -> None:
        pipeline = self._pipeline
        try:
            if exception is not None:
                mark_reported(exception)  # the server logs it next: that record is not another alert
            if self._is_excluded(scope):
                return
            duration = time.perf_counter() - started
            event = None
            if self._fingerprint is None:
                method = grouped_method(scope["method"], scope.get("route"))
                if after_response is None:
                    fingerprint = fingerprint_of(method, route_template(scope), status, exception)
                else:
                    fingerprint = after_response_fingerprint(method, route_template(scope), exception)
            else:
                event = self._capture(
                    scope, status, exception, duration, request_tee, capture, after_response
                )
                fingerprint = pipeline.fingerprint_of(event)
            if pipeline.is_reported(fingerprint):
                return
            if event is None:
                event = self._capture(
                    scope, status, exception, duration, request_tee, capture, after_response
                )
            pipeline.submit(fingerprint, event)
        except Exception:
            pipeline.count_lost()
            logger.exception("lark_alert_middleware: could not capture a failing request")

    def _capture(
        self,
        scope: Scope,
        status: int,
        exception: BaseException | None,
        duration: float,
        request_tee: RequestBodyTee | None,
        capture: ResponseCapture | None,
        after_response: Moment | None,
    ) -> ErrorEvent:
        if not self._service_known:
            self._learn_service(scope)
        event = captured_event(scope, status, exception, duration, request_tee, capture)
        return event if after_response is None else after_response_event(event, after_response)

    def _is_excluded(self, scope: Scope) -> bool:
        return self._excluded is not None and self._excluded.match(scope.get("path", "")) is not None

    def _learn_service(self, scope: Scope) -> None:
        title = getattr(scope.get("app"), "title", None)
        if isinstance(title, str) and title.strip():
            self._pipeline.name_service(as_text(title.strip()[:200]))
        self._service_known = True

    async def _not_observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websockets, lifespan, other scopes, or a configuration that must not start."""
        if self._refusal is not None:
            await self._refuse_to_start(self._refusal, scope, receive, send)
        elif scope["type"] == "websocket" and self._mode is Mode.OBSERVING:
            in_connection = request_scope.set(scope) if tracking.on else None
            try:
                await observe_websocket(self.app, scope, receive, send, self._report_websocket)
            finally:
                if in_connection is not None:
                    request_scope.reset(in_connection)
        elif scope["type"] == "lifespan" and self._mode is Mode.OBSERVING:
            await self._observe_lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _report_websocket(self, scope: Scope, exception: Exception, session: Session) -> None:
        pipeline = self._pipeline
        try:
            if self._is_excluded(scope):
                return
            mark_reported(exception)  # the server logs it next: that record is not another alert
            if not self._service_known:
                self._learn_service(scope)
            pipeline.report(websocket_event(scope, exception, session))
        except Exception:
            pipeline.count_lost()
            logger.exception("lark_alert_middleware: could not capture a failing websocket")

    async def _observe_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline = self._pipeline
        if not self._service_known:
            self._learn_service(scope)
        warming_up = pipeline.warm_up()

        async def send_when_ready(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                # Traffic starts once the alerter is ready, so no request shares the CPU with that.
                await anyio.to_thread.run_sync(concurrent.futures.wait, [warming_up], WARM_UP_WAIT_SECONDS)
                if warming_up.done() and isinstance(warming_up.exception(), ConfigurationError):
                    raise warming_up.exception()  # type: ignore[misc]  # the app's lifespan reports it
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                if logs is not None:
                    logs.detach()  # before the last alerts are delivered
                await pipeline.drain_at_shutdown()
            await send(message)

        logs = self._logs
        if logs is not None:
            logs.attach()  # before the app's start-up, whose records are captured too
        try:
            await observe_startup(self.app, scope, receive, send_when_ready, self._report_startup_failure)
        finally:
            if logs is not None:
                logs.detach()  # also when start-up failed

    async def _report_startup_failure(self, event: ErrorEvent) -> None:
        """Deliver the card before the server hears of it and exits: as at shutdown, within its timeout."""
        pipeline = self._pipeline
        if self._logs is not None:
            self._logs.detach()  # the server logs the failure next: that record is not another alert
        try:
            if event.exception is not None:
                mark_reported(event.exception)
            pipeline.report(event)
            await pipeline.drain_at_shutdown()
        except Exception:
            pipeline.count_lost()
            logger.exception("lark_alert_middleware: could not report a failed start-up")

    @staticmethod
    async def _refuse_to_start(
        refusal: ConfigurationError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": str(refusal)})
        raise refusal


def _compile_patterns(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))
