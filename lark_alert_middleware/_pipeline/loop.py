"""The alerter thread: one daemon thread per process running its own asyncio loop.

This is where a fork is noticed (the child starts its own thread on first use, and every member
forgets the parent's work) and where a new loop is (a `LoopLocal` is made again for it): no
other module looks for either.

Alert work never runs on the loop that served the request. That loop may be short-lived
(Starlette's TestClient starts one per client), may be trio rather than asyncio, and must
never wait on Lark or Redis. Like Sentry's transport, requests hand events to this thread
through a thread-safe call and return at once.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger("lark_alert_middleware")

T = TypeVar("T")


class StopsAtExit(Protocol):
    """Something living on the alerter thread that must finish its work before the process exits."""

    shutdown_timeout: float

    async def shutdown(self) -> None: ...

    def forget_after_fork(self) -> None:
        """In a forked child: the parent finishes its own work; start with none and fresh locks."""
        ...


class LoopLocal(Generic[T]):
    """A value of the alerter loop's own: made there on first use, and made again for a new loop."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        """The value for the running loop (on the alerter thread)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._value is None:
            # A value of another loop belongs to a parent process: dropped, not closed.
            self._value, self._loop = self._make(), loop
        return self._value

    def current(self) -> T | None:
        """The value made for the loop that runs now, or None before it is made."""
        return self._value if self._loop is background_loop.running() else None


class ExecutorAtExit(concurrent.futures.ThreadPoolExecutor):
    """The alerter loop's executor (name lookups, for httpx and redis-py): once the interpreter is
    exiting, thread pools take no more work, so what is submitted then runs here and now. Without
    this, a script's last alerts could not reach a webhook with a host name (Lark's) at exit."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
            done: Future[T] = Future()
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as error:
                done.set_exception(error)
            return done


class BackgroundLoop:
    """Starts the thread on first use; after a fork the child starts its own on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: weakref.WeakSet[StopsAtExit] = weakref.WeakSet()
        self._closers: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(ExecutorAtExit(thread_name_prefix="lark-alert-middleware-executor"))
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="lark-alert-middleware", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the alerter thread; safe from any thread."""
        self.loop().call_soon_threadsafe(callback, *args)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Start a coroutine on the alerter thread; the future can be waited on from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop())

    def stop_at_exit(self, member: StopsAtExit) -> None:
        """Let `member.shutdown()` finish its work when the interpreter exits (held weakly)."""
        self._stopping.add(member)

    def close_at_exit(self, closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `closer()` on the thread at exit, after every member has shut down."""
        self._closers.append(closer)

    def running(self) -> asyncio.AbstractEventLoop | None:
        """The alerter thread's loop, if it is running (in this process)."""
        return self._loop

    def is_current(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self) -> None:
        """Shut every member down within its timeout, run the closers, stop the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        members = list(self._stopping)
        deadline = max((member.shutdown_timeout for member in members), default=0.0) + 2.0

        async def shut_down() -> None:
            await asyncio.gather(*(_shut_down(member) for member in members))
            # What the timeout left behind is abandoned before the clients it uses are closed.
            await _cancel_remaining_tasks()
            for closer in self._closers:
                try:
                    await closer()
                except Exception:
                    logger.debug("lark_alert_middleware: error while closing", exc_info=True)

        try:
            asyncio.run_coroutine_threadsafe(shut_down(), loop).result(deadline)
        except Exception:
            logger.warning("lark_alert_middleware: the alerter did not stop within %.1fs", deadline)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=2.0)
        if not thread.is_alive():
            loop.close()
        with self._lock:
            self._loop = self._thread = None

    def forget_after_fork(self) -> None:
        # The child has no alerter thread; the next use starts a fresh one.
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        for member in list(self._stopping):
            member.forget_after_fork()


async def _shut_down(member: StopsAtExit) -> None:
    try:
        await asyncio.wait_for(member.shutdown(), member.shutdown_timeout + 1.0)
    except Exception:
        logger.warning("lark_alert_middleware: could not finish pending alerts at exit", exc_info=True)


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    for _ in range(3):  # a task's cleanup may start another; not indefinitely
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


background_loop = BackgroundLoop()
atexit.register(background_loop.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=background_loop.forget_after_fork)
