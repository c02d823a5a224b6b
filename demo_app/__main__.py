"""Run the demo: `python -m demo_app` (what `make demo` does).

Without LARK_WEBHOOK_URL, alerts go to a Lark-compatible receiver started here on loopback
and are shown at /_alerts; with it, they go to your group. With REDIS_URL, dedup uses Redis.
Sample traffic is fired once the server is up; then it serves until Ctrl-C (or exits: --once).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence

import uvicorn

from lark_alert_middleware import LarkAlertMiddleware
from lark_alert_middleware._lark.webhook import redact_url
from lark_alert_middleware.testing import LarkReceiver

from .app import FAILURES, app
from .inbox import inbox_routes
from .traffic import fire

FLUSH_SECONDS = 30.0


class _OneLineTracebacks(logging.Filter):
    """uvicorn logs each unhandled exception's traceback; in the demo the card shows it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            summary = f"{type(error).__name__}: {error} (the traceback is on the card)"
            record.msg = f"{record.getMessage().strip()}: {summary}"
            record.args = None
            record.exc_info = None
        return True


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket; a free port when the asked-for one is taken, so a busy laptop still gets a demo."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        print(f"Port {port} is taken; using a free one instead (PORT=... chooses).")
        listener.bind((host, 0))
    return listener


def _middleware() -> LarkAlertMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, LarkAlertMiddleware):
        layer = getattr(layer, "app", None)
        if layer is None:
            raise RuntimeError("the demo app has no LarkAlertMiddleware")
    return layer


def _configure_environment() -> LarkReceiver | None:
    """Say where alerts go and how they are deduplicated; start a local receiver if needed."""
    receiver = None
    webhook_url = os.environ.get("LARK_WEBHOOK_URL")
    if webhook_url:
        print(f"Alerts: your Lark group ({redact_url(webhook_url)})")
    else:
        receiver = LarkReceiver(per_second=1000, per_minute=100_000).start()
        os.environ["LARK_WEBHOOK_URL"] = receiver.url
        print("Alerts: a Lark-compatible receiver on loopback (set LARK_WEBHOOK_URL to post to your group)")
    if os.environ.get("REDIS_URL"):
        # A fresh prefix per run: a second run within the window would otherwise be all repeats.
        prefix = os.environ.setdefault("LARK_ALERT_REDIS_PREFIX", f"lark-alert-demo:{uuid.uuid4().hex[:8]}:")
        print(f"Dedup:  Redis at REDIS_URL, keys under {prefix}")
    else:
        print("Dedup:  in-process (REDIS_URL=redis://127.0.0.1:6379/0 makes it fleet-wide)")
    return receiver


def _report(receiver: LarkReceiver | None, failing_requests: int) -> bool:
    """Print what reached Lark; True if every distinct failure raised one card."""
    middleware = _middleware()
    if middleware.alerter is None:
        reason = middleware.configuration_error or "LARK_ALERT_ENABLED=false"
        print(f"The middleware is not alerting: {reason}")
        return False
    middleware.alerter.flush(FLUSH_SECONDS)
    if receiver is None:
        stats = middleware.alerter.stats()
        pending = middleware.alerter.pending
        print(
            f"\n{stats.sent} cards posted to your Lark group, {stats.failed} refused or failed, "
            f"{pending} still being retried."
        )
        return stats.failed == 0 and stats.sent > 0
    titles = [card["header"]["title"]["content"] for card in receiver.cards]
    print(f"\n{len(titles)} alerts for {failing_requests} failing requests (repeats deduplicated):")
    for title in titles:
        print(f"  {title}")
    if len(titles) != len(FAILURES):
        print(f"Expected {len(FAILURES)} alerts, one per kind of failure; see the log above.")
    return len(titles) == len(FAILURES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the lark-alert-middleware demo.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--once", action="store_true", help="fire the traffic, report, and exit")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    receiver = _configure_environment()
    app.router.routes.extend(inbox_routes(receiver))
    listener = _listen(arguments.host, arguments.port)
    host, port = listener.getsockname()[:2]
    base_url = f"http://{host}:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    logging.getLogger("uvicorn.error").addFilter(_OneLineTracebacks())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("The demo server could not start; see the log above.")
            return 1
        thread.join(0.05)

    print(f"\nDemo service on {base_url}, firing sample traffic:")
    results = fire([base_url])
    complete = _report(receiver, sum(1 for result in results if result.status_code >= 400))
    if receiver is not None:
        print(f"\nInbox:  {base_url}/_alerts   <- the cards, rendered close to how Lark shows them")
    print(f"Routes: {base_url}/           <- click one to fail it again", flush=True)
    try:
        if not arguments.once:
            print("Serving until Ctrl-C.", flush=True)
            thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(15)
        if receiver is not None:
            receiver.stop()
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
