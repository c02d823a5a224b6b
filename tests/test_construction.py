"""Nothing the app can observe at construction: Starlette builds middlewares inside an app's first call.

The first request (or the lifespan start-up) runs `LarkAlertMiddleware.__init__`; an app's own
test that patches `json.dumps` around it, as FastAPI's own tests do, must see only its calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lark_alert_middleware import LarkAlertMiddleware

from .conftest import find_middleware, wait_until


def _app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, list[int]]:
        return {"items": [1, 2, 3]}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("fails")

    if options:
        app.add_middleware(LarkAlertMiddleware, **options)
    return app


@contextmanager
def json_dumps_callers() -> Iterator[list[str]]:
    """`json.dumps` patched, as an app's test would patch it; yields the modules that called it."""
    callers: list[str] = []
    real_dumps = json.dumps

    def spy(*args: Any, **kwargs: Any) -> str:
        callers.append(str(sys._getframe(1).f_globals.get("__name__")))
        return real_dumps(*args, **kwargs)

    with mock.patch("json.dumps", spy):
        yield callers


def ours(callers: list[str]) -> list[str]:
    return [name for name in callers if name.startswith(("lark_alert_middleware", "jinja2"))]


def test_an_apps_first_request_sees_no_json_dumps_call_it_did_not_make() -> None:
    with json_dumps_callers() as bare_callers:
        assert TestClient(_app()).get("/items").status_code == 200
    with json_dumps_callers() as callers:
        assert TestClient(_app(rate_limit=0)).get("/items").status_code == 200
    assert ours(callers) == []
    assert len(callers) == len(bare_callers)


def test_a_failing_first_request_makes_its_card_without_reaching_a_patched_json_dumps(
    tmp_path: Path,
) -> None:
    template = tmp_path / "card.json.j2"  # a template of its own: checked in this test, not before
    template.write_text('{"elements": [{"tag": "markdown", "content": {{ fingerprint | tojson }}}]}')
    app = _app(rate_limit=0, template=str(template))
    with json_dumps_callers() as callers:
        client = TestClient(app, raise_server_exceptions=False)
        assert client.get("/fail").status_code == 500
        middleware = find_middleware(app)
        assert middleware.alerter is not None
        assert middleware.alerter.flush(10)
        assert middleware.alerter.stats().sent == 1
    assert ours(callers) == []


def test_with_lifespan_the_template_is_checked_at_start_up_and_a_bad_one_stops_it(tmp_path: Path) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{"header": {"title": "{{ title }}"}')  # not a card: the JSON is cut short
    app = _app(template=str(template))
    with pytest.raises(Exception, match="does not render a valid card"), TestClient(app):
        pass


def test_without_lifespan_a_bad_template_costs_no_request_and_the_first_alert_still_goes_out(
    tmp_path: Path,
) -> None:
    template = tmp_path / "card.json.j2"
    template.write_text('{"header": {"title": "{{ title }}"}')
    app = _app(rate_limit=0, template=str(template))
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/items").status_code == 200
    assert client.get("/fail").status_code == 500
    middleware = find_middleware(app)
    assert middleware.alerter is not None
    wait_until(lambda: middleware.alerter is not None and middleware.alerter.stats().sent == 1)
    # Sent as the minimal card, which says the template could not be used; counted as failed.
    assert middleware.alerter.stats().failed == 1


def test_construction_and_a_successful_first_request_start_no_thread_and_open_no_connection() -> None:
    script = textwrap.dedent(
        """
        import socket, threading
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from lark_alert_middleware import LarkAlertMiddleware

        connections = []
        real_connect = socket.socket.connect
        def connect(self, address):
            connections.append(address)
            return real_connect(self, address)
        socket.socket.connect = connect

        app = FastAPI()
        @app.get("/")
        async def root():
            return {"ok": True}
        app.add_middleware(
            LarkAlertMiddleware,
            webhook_url="http://127.0.0.1:9/open-apis/bot/v2/hook/t",
            redis_url="redis://127.0.0.1:9/0",
        )
        before = {thread.name for thread in threading.enumerate()}
        assert TestClient(app).get("/").status_code == 200
        started = {thread.name for thread in threading.enumerate()} - before
        print(sorted(name for name in started if "lark" in name), connections)
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stdout.strip() == "[] []"
