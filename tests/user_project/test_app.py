"""The user's own tests, unaware of the middleware; run on both anyio backends."""

from __future__ import annotations

import pytest
from app import app
from starlette.testclient import TestClient


@pytest.fixture(params=["asyncio", "trio"])
def client(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    with TestClient(app, backend=request.param) as test_client:
        yield test_client


def test_home_uses_lifespan_state(client: TestClient) -> None:
    assert client.get("/").text == "hello"


def test_body_can_be_read_twice(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 100_000).json() == {"length": 100_000, "again": 100_000}


def test_missing_is_a_404(client: TestClient) -> None:
    response = client.get("/missing")
    assert response.status_code == 404 and response.text == "no such thing"


def test_failure_raises_in_the_test(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="database is down"):
        client.get("/fail")
