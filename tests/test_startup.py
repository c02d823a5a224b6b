"""Start-up failures in process: one card, delivered before the server hears that start-up failed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware._card.markup import count_mentions, markdown_text
from lark_alert_middleware._sources.startup import is_failure, startup_event
from lark_alert_middleware.testing import LarkReceiver

from .conftest import card_title, find_middleware, shown_text

pytestmark = pytest.mark.anyio


class MigrationError(Exception):
    pass


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@dataclass
class Server:
    """What a server saw of the app's lifespan, and how many cards Lark had when it saw each message."""

    lark: LarkReceiver
    messages: list[tuple[str, int]] = field(default_factory=list)
    error: BaseException | None = None

    async def run(self, app: ASGIApp) -> Server:
        inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> Message:
            return inbox.pop(0)

        async def send(message: Message) -> None:
            self.messages.append((message["type"], len(self.lark.cards)))

        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await app(scope, receive, send)
        except BaseException as error:
            self.error = error
        return self


def app_failing_with(error: BaseException, lark: LarkReceiver, **options: Any) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise error
        yield

    app = FastAPI(title="orders", lifespan=lifespan)
    app.add_middleware(LarkAlertMiddleware, webhook_url=lark.url, **options)
    return app


async def test_a_failing_start_up_is_delivered_before_the_server_hears_of_it(
    lark_receiver: LarkReceiver,
) -> None:
    error = MigrationError("migration 0042 failed: column orders.total does not exist")
    server = await Server(lark_receiver).run(app_failing_with(error, lark_receiver))
    assert server.error is error  # re-raised unchanged
    assert server.messages == [("lifespan.startup.failed", 1)]  # the card was in Lark by then
    [card] = lark_receiver.cards
    assert card_title(card) == (
        "start-up failed: tests.test_startup.MigrationError: migration 0042 failed: "
        "column orders.total does not exist"
    )
    assert card["header"]["template"] == "red"
    text = shown_text(card)
    assert "STARTUP tests.test_startup.MigrationError" in text  # the fingerprint
    assert "Traceback" in text and "in lifespan" in text
    assert "start-up" in text  # the source


async def test_a_successful_start_up_sends_nothing(lark_receiver: LarkReceiver) -> None:
    app = FastAPI(title="orders")
    app.add_middleware(LarkAlertMiddleware, webhook_url=lark_receiver.url)
    server = await Server(lark_receiver).run(app)
    assert (server.messages, server.error) == (
        [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 0)],
        None,
    )
    assert lark_receiver.requests == []


@pytest.mark.parametrize(
    ("error", "title"),
    [
        (SystemExit("DATABASE_URL is not set"), "start-up failed: SystemExit: DATABASE_URL is not set"),
        (SystemExit(3), "start-up failed: SystemExit: 3"),
        (SystemExit(0), None),  # a deliberate exit
        (SystemExit(None), None),
        (KeyboardInterrupt(), None),  # someone stopping the process
    ],
)
async def test_system_exit_with_a_failure_code_is_a_failed_start_up(
    lark_receiver: LarkReceiver, error: BaseException, title: str | None
) -> None:
    app = app_failing_with(error, lark_receiver)
    server = await Server(lark_receiver).run(app)
    assert server.error is error and server.messages[0][0] == "lifespan.startup.failed"
    alerter = find_middleware(app).alerter
    assert alerter is not None and alerter.flush(10)
    assert [card_title(card) for card in lark_receiver.cards] == ([title] if title else [])


async def test_an_app_that_says_start_up_failed_without_raising_is_reported_with_its_reason(
    lark_receiver: LarkReceiver,
) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the cache is unreachable\nat 10.0.0.7"})

    server = await Server(lark_receiver).run(LarkAlertMiddleware(raw, webhook_url=lark_receiver.url))
    assert server.messages == [("lifespan.startup.failed", 1)]
    [card] = lark_receiver.cards
    assert card_title(card) == "start-up failed: the cache is unreachable"
    assert card["header"]["template"] == "red"
    assert "at 10.0.0.7" in shown_text(card)  # the whole reason, in the card's message


async def test_an_app_that_raises_during_start_up_without_saying_so_is_reported(
    lark_receiver: LarkReceiver,
) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise MigrationError("no schema")

    server = await Server(lark_receiver).run(LarkAlertMiddleware(raw, webhook_url=lark_receiver.url))
    assert isinstance(server.error, MigrationError)
    assert [card_title(card) for card in lark_receiver.cards] == [
        "start-up failed: tests.test_startup.MigrationError: no schema"
    ]


async def test_an_app_that_does_not_speak_lifespan_is_not_a_failed_start_up(
    lark_receiver: LarkReceiver,
) -> None:
    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"  # raises at once: servers carry on without lifespan

    middleware = LarkAlertMiddleware(http_only, webhook_url=lark_receiver.url)
    server = await Server(lark_receiver).run(middleware)
    assert isinstance(server.error, AssertionError)
    assert middleware.alerter is not None and middleware.alerter.flush(10)
    assert lark_receiver.requests == []


async def test_a_hung_webhook_delays_the_exit_by_the_shutdown_timeout_at_most(
    lark_receiver: LarkReceiver,
) -> None:
    lark_receiver.hold()
    try:
        app = app_failing_with(MigrationError("x"), lark_receiver, shutdown_timeout=1)
        server = await Server(lark_receiver).run(app)
        assert server.messages == [("lifespan.startup.failed", 0)]
        alerter = find_middleware(app).alerter
        assert alerter is not None and alerter.stats().dropped == 1  # given up on, and said so
    finally:
        lark_receiver.release()


@pytest.mark.parametrize(
    "error",
    [
        MigrationError("<at id=all></at> {{ 7*7 }} **bold** " + "x" * 1_000_000),
        MigrationError("password=hunter2 in the DSN postgres://app:s3cr3t@db/orders"),
        UnprintableError(),
    ],
)
async def test_hostile_failures_make_a_card_that_pings_nobody_and_leaks_nothing(
    lark_receiver: LarkReceiver, error: Exception
) -> None:
    await Server(lark_receiver).run(app_failing_with(error, lark_receiver))
    [card] = lark_receiver.cards
    raw = json.dumps(card, ensure_ascii=False)
    assert count_mentions(markdown_text(card)) == 0  # plain_text (the title) mentions nobody
    assert "49" not in card_title(card)  # Jinja syntax is text
    assert "hunter2" not in raw and "s3cr3t" not in raw
    assert card_title(card).startswith("start-up failed: tests.test_startup.")


def test_only_failure_codes_and_exceptions_are_failures() -> None:
    assert is_failure(None) and is_failure(ValueError()) and is_failure(SystemExit("why"))
    assert not is_failure(SystemExit(0)) and not is_failure(KeyboardInterrupt())
    assert not is_failure(GeneratorExit())


def test_an_empty_reason_still_says_start_up_failed() -> None:
    assert startup_event(None, "", 0.0).subject == "start-up failed: the app said so, without a reason"
    assert startup_event(None, None, 0.0).fingerprint == "STARTUP"


async def test_with_log_capture_the_servers_log_of_the_failure_is_not_a_second_card(
    lark_receiver: LarkReceiver, root_logger: Any, process_pipeline: None
) -> None:
    import logging

    class LoggingServer(Server):
        async def run(self, app: ASGIApp) -> Server:
            inbox: list[Message] = [{"type": "lifespan.startup"}]

            async def receive() -> Message:
                return inbox.pop(0)

            async def send(message: Message) -> None:
                if message["type"] == "lifespan.startup.failed":
                    # As uvicorn does: the failure's text at ERROR, without the exception attached.
                    logging.getLogger("uvicorn.error").error(message.get("message") or "start-up failed")
                self.messages.append((message["type"], len(self.lark.cards)))

            scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            try:
                await app(scope, receive, send)
            except BaseException as error:
                self.error = error
            return self

    error = MigrationError("migration 0042 failed")
    app = app_failing_with(error, lark_receiver, capture_logs="ERROR", rate_limit=0)
    server = await LoggingServer(lark_receiver).run(app)
    assert server.error is error
    middleware = find_middleware(app)
    assert middleware.alerter is not None and middleware.alerter.flush(10)
    assert [card_title(card) for card in lark_receiver.cards] == [
        "start-up failed: tests.test_startup.MigrationError: migration 0042 failed"
    ]
