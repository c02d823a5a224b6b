"""Start-up failures: the app's lifespan start-up raised or said it failed. A card, before the server exits.

Servers exit as soon as they hear that start-up failed (uvicorn, on `lifespan.startup.failed`),
so the card is delivered first, within the shutdown timeout, and only then is the server told.
A crash-looping deployment fails the same way at every restart: the dedup window makes that one
card per window, and the next card counts the restarts in between.

An exception counts when the app had begun its start-up (it received `lifespan.startup`): an app
that raises at once does not speak lifespan, and servers carry on without it. `SystemExit` with
a failure code (`sys.exit("DATABASE_URL is not set")`) is a failure; `sys.exit(0)`,
`KeyboardInterrupt` and cancellation are someone stopping the process, not a failure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._pipeline.fingerprint import startup_fingerprint
from .._records import STARTUP, ErrorEvent, ExceptionText

# How much of a failure's message the card's title keeps: its first line, this long at most.
SUBJECT_CHARACTERS = 300

FailureHook = Callable[[ErrorEvent], Awaitable[None]]


async def observe_startup(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, failed: FailureHook
) -> None:
    """Run the app's lifespan; a failed start-up is awaited in `failed` before the server hears of it."""
    started = time.perf_counter()
    begun = ended = False

    async def watching_receive() -> Message:
        nonlocal begun
        message = await receive()
        if message["type"] == "lifespan.startup":
            begun = True
        return message

    async def watching_send(message: Message) -> None:
        nonlocal ended
        if not ended and message["type"] == "lifespan.startup.failed":
            ended = True
            # Sent from the app's exception handler (as Starlette does): the exception it handles.
            exception = sys.exc_info()[1]
            if is_failure(exception):
                await failed(startup_event(exception, message.get("message"), time.perf_counter() - started))
        elif message["type"] == "lifespan.startup.complete":
            ended = True
        await send(message)

    try:
        await app(scope, watching_receive, watching_send)
    except BaseException as exception:
        if begun and not ended:
            ended = True
            if is_failure(exception):
                await failed(startup_event(exception, None, time.perf_counter() - started))
        raise


def is_failure(exception: BaseException | None) -> bool:
    """Whether start-up ending with `exception` (None: the app just said it failed) is a failure."""
    if exception is None or isinstance(exception, Exception):
        return True
    if isinstance(exception, SystemExit):
        return exception.code not in (None, 0)
    return False  # KeyboardInterrupt, cancellation: the process is being stopped


def startup_event(exception: BaseException | None, message: object, seconds: float) -> ErrorEvent:
    """`start-up failed: MigrationError: column orders.total does not exist`, with the traceback."""
    if exception is not None:
        text = ExceptionText.of(exception)
        what = f"{text.type_name}: {text.message}" if text.message else text.type_name
        said = None
    else:
        said = message if isinstance(message, str) and message.strip() else None
        what = said or "the app said so, without a reason"
    first_line = what.strip().splitlines()[0] if what.strip() else what
    return ErrorEvent(
        timestamp=time.time() - seconds,
        duration_seconds=seconds,
        exception=exception,
        source=STARTUP,
        level="critical",
        subject=f"start-up failed: {first_line[:SUBJECT_CHARACTERS]}",
        fingerprint=startup_fingerprint(exception),
        message=said,
    )
