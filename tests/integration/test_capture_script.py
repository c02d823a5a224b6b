"""A plain `python script.py` that reports errors and exits: the cards arrive, the exit is prompt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_title, shown_text
from ..servers import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "tests" / "integration" / "capture_script.py"
ZERO_DIVISION = "ZeroDivisionError: integer division or modulo by zero"


def run_script(**environment: str) -> subprocess.CompletedProcess[str]:
    """Run the script without the developer's LARK_ and REDIS_URL settings; wait for it to exit."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "REDIS_URL"))}
    env.update(environment)
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_a_script_delivers_its_alerts_at_exit_and_exits_at_once(lark_receiver: LarkReceiver) -> None:
    # A host name, as Lark's webhook has: it is looked up while the interpreter exits.
    url = lark_receiver.url.replace("127.0.0.1", "localhost")
    # Waiting for anything but the posts would take the shutdown timeout, longer than run_script's.
    done = run_script(LARK_WEBHOOK_URL=url, LARK_ALERT_SHUTDOWN_TIMEOUT="300")
    assert (done.returncode, done.stdout) == (0, "script done\n"), done.stderr
    titles = {card_title(card) for card in lark_receiver.cards}
    assert titles == {ZERO_DIVISION, "nightly invoices: some skipped"}
    [decorated] = [card for card in lark_receiver.cards if card_title(card) == ZERO_DIVISION]
    assert "**job**\nnightly-invoices" in shown_text(decorated)


def test_a_script_whose_webhook_hangs_exits_within_the_shutdown_timeout(lark_receiver: LarkReceiver) -> None:
    lark_receiver.hold()
    try:
        done = run_script(LARK_WEBHOOK_URL=lark_receiver.url, LARK_ALERT_SHUTDOWN_TIMEOUT="1")
        assert lark_receiver.in_flight == 2  # both posts were made, and are still unanswered
    finally:
        lark_receiver.release()
    assert done.returncode == 0, done.stderr
    assert "2 alerts still pending after 1.0s at shutdown; dropped" in done.stderr


def test_without_a_webhook_a_script_sends_nothing_and_exits_0() -> None:
    done = run_script()
    assert (done.returncode, done.stdout) == (0, "script done\n"), done.stderr
    # The alerts are written to the log instead: Python's last-resort handler shows the warnings.
    assert done.stderr.count("lark_alert_middleware alert (LARK_WEBHOOK_URL is not set)") == 2
