"""Real processes: uvicorn serving the app, with its configuration passed in the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..servers import Server, start_uvicorn

__all__ = ["Server", "serve"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `tests.integration.served_app:app` under uvicorn with extra environment variables."""
    started: list[Server] = []

    def start(workers: int = 1, app: str = "tests.integration.served_app:app", **environment: str) -> Server:
        server = start_uvicorn(app, tmp_path, environment, workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
