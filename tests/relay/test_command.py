"""`lark-alert relay` and `uvicorn lark_alert_middleware.relay:app`: served, or refused with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lark_alert_middleware.cli import main

from ..conftest import free_port, wait_until
from ..servers import REPO
from .conftest import TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def start(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (`python -m ...`, output in tmp_path/output.log); killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def launch(started: list[subprocess.Popen[bytes]], log: Path, *command: str, **environment: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "REDIS_URL"))}
    env.update(environment, PYTHONPATH=str(REPO))
    with log.open("wb") as output:
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", *command], env=env, cwd=REPO, stdout=output, stderr=output
            )
        )


def test_lark_alert_relay_without_a_token_says_how_to_set_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert err.startswith("problem: LARK_RELAY_TOKEN is not set")
    assert "export LARK_RELAY_TOKEN=$(openssl rand -hex 16)" in err


def test_lark_alert_relay_serves_the_relay(start: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "output.log"
    launch(start, log, "lark_alert_middleware", "relay", "--port", str(port), LARK_RELAY_TOKEN=TOKEN)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return start[0].poll() is not None

    wait_until(healthy, timeout=60, what="the relay to answer /healthz")
    answer = httpx.post(
        f"http://127.0.0.1:{port}/generic?token={TOKEN}", json={"title": "from the command line"}, timeout=10
    )
    assert answer.status_code == 202, log.read_text()
    start[0].send_signal(signal.SIGINT)
    assert start[0].wait(timeout=30) == 0
    output = log.read_text()
    assert "token=***" in output and TOKEN not in output


def test_uvicorn_refuses_to_start_the_relay_without_a_token(
    start: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    log = tmp_path / "output.log"
    launch(start, log, "uvicorn", "lark_alert_middleware.relay:app", "--port", str(free_port()))
    assert start[0].wait(timeout=60) != 0
    output = log.read_text()
    assert "LARK_RELAY_TOKEN is not set" in output and "Application startup failed" in output
