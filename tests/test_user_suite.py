"""A user's TestClient suite, on asyncio and trio, with -W error: unchanged by adding the middleware."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lark_alert_middleware.testing import LarkReceiver

from .conftest import card_title

USER_PROJECT = Path(__file__).parent / "user_project"
NOISE = (
    "Task was destroyed",
    "Unclosed",
    "ResourceWarning",
    "Exception ignored",
    "no current event loop",
    "coroutine",
    "Traceback",
)


def run_user_suite(add_middleware: bool, webhook_url: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LARK_")}
    env.update(
        ADD_LARK_MIDDLEWARE="1" if add_middleware else "0",
        LARK_WEBHOOK_URL=webhook_url,
        PYTHONWARNINGS="error",
    )
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", "-q"],
        cwd=USER_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_suite_passes_without_the_middleware(lark_receiver: LarkReceiver) -> None:
    result = run_user_suite(False, lark_receiver.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
    assert lark_receiver.requests == []


def test_the_suite_passes_unchanged_with_the_middleware_and_alerts_arrive(
    lark_receiver: LarkReceiver,
) -> None:
    result = run_user_suite(True, lark_receiver.url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "8 passed" in result.stdout
    for noise in NOISE:
        assert noise not in output, output
    # Each TestClient drains its alerts at lifespan shutdown: both backends' alerts are in.
    titles = sorted(card_title(card) for card in lark_receiver.cards)
    assert titles == ["404 GET /missing", "404 GET /missing", "500 GET /fail", "500 GET /fail"]
