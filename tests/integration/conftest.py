"""Real processes: uvicorn serving the app, with its configuration passed in the environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


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

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `tests.integration.served_app:app` under uvicorn with extra environment variables."""
    started: list[Server] = []

    def start(
        workers: int = 1,
        app: str = "tests.integration.served_app:app",
        ready_path: str = "/ok",
        **environment: str,
    ) -> Server:
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
            "warning",
        ]
        # A file, not a pipe: hundreds of logged tracebacks would fill a pipe and block the server.
        log = tmp_path / f"uvicorn-{port}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        wait_until(
            lambda: _answers(server.url + ready_path) or process.poll() is not None,
            timeout=60,
            what="uvicorn",
        )
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited: {server.output()}")
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)


@dataclass
class Process:
    """A `python -m ...` process this test started, its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Wait until the output contains `text`; fail (with the output) if the process exits first."""
        wait_until(
            lambda: text in self.output() or self.process.poll() is not None, timeout=timeout, what=text
        )
        if text not in self.output():
            exited = f"exited with {self.process.returncode} before printing {text!r}"
            raise AssertionError(f"{exited}:\n{self.output()}")
        return self.output()

    def interrupt(self) -> int:
        """Ctrl-C, then wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start `python -m <module> <arguments>` from the repository, without the developer's LARK_/REDIS_URL."""
    started: list[Process] = []

    def start(module: str, *arguments: str, **environment: str) -> Process:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "REDIS_URL"))}
        env.update(environment, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        log = tmp_path / f"{module}-{len(started)}.log"
        with log.open("wb") as output:
            command = [sys.executable, "-m", module, *arguments]
            process = subprocess.Popen(command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        started.append(Process(process, log))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=30)
