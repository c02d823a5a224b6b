"""Without Chromium the browser tests skip on a newcomer's machine, saying why, and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..servers import REPO

BROWSER_TESTS = "tests/integration/test_inbox_browser.py"
PHONE_TEST = f"{BROWSER_TESTS}::test_the_default_card_preview_reads_well_on_a_phone_sized_screen"


def run_without_chromium(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["CHROMIUM"] = "/nonexistent/chromium"
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", PHONE_TEST]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_browser_skips_locally_with_the_reason_shown() -> None:
    result = run_without_chromium(ci=None)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "the browser test needs Chromium, and there is none at /nonexistent/chromium" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_browser_fails_in_ci(ci: str) -> None:
    result = run_without_chromium(ci=ci)
    assert result.returncode == 1, result.stdout
    assert "1 error" in result.stdout or "1 failed" in result.stdout
