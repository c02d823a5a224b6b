"""Real uvicorn processes serving an app from this repository, for tests that need a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from .conftest import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def terminate(self) -> str:
        """SIGTERM (what an orchestrator sends), wait for exit, return what the server printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.output()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def start_uvicorn(
    app: str,
    log_dir: Path,
    environment: dict[str, str],
    workers: int = 1,
    ready_path: str = "/ok",
    log_level: str = "warning",
) -> Server:
    """Start `uvicorn app` on a free loopback port with extra environment; return once it answers."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "REDIS_URL"))}
    env.update(environment)
    env["PYTHONPATH"] = str(REPO)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
    ]
    # A file, not a pipe: hundreds of logged tracebacks would fill a pipe and block the server.
    log = log_dir / f"uvicorn-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(
            lambda: _answers(server.url + ready_path) or process.poll() is not None,
            timeout=60,
            what="uvicorn",
        )
    except AssertionError:
        server.kill()
        raise
    if process.poll() is not None:
        raise AssertionError(f"uvicorn exited: {server.output()}")
    return server
