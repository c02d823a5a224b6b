"""Real processes: uvicorn serving the app, and `python -m` programs, configured by environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import wait_until
from ..servers import REPO, Server, start_uvicorn
from ..topologies import ClusterTopology, SentinelTopology, start_cluster, start_sentinels

__all__ = ["Process", "Server", "serve", "spawn"]


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
        server = start_uvicorn(app, tmp_path, environment, workers=workers, ready_path=ready_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


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


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """A Redis Cluster of this module's own: 3 masters, each with a replica (node timeout 1 s)."""
    topology = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield topology
    topology.stop()


@pytest.fixture(scope="module")
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    """A master, its replica and 3 sentinels of this module's own (down after 1 s)."""
    topology = start_sentinels(tmp_path_factory.mktemp("sentinels"))
    yield topology
    topology.stop()
