"""When the card speaks, across two uvicorn workers sharing Redis: escalation, recovered, summary."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, card_full_title, shown_text
from .conftest import Server
from .test_uvicorn import hammer

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]


def test_150_identical_errors_in_one_window_give_the_first_card_and_one_per_threshold(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_ESCALATE_AT="10,100",
        LARK_ALERT_CHECK_INTERVAL="0.2",
    )
    assert asyncio.run(hammer(server.url, ["/status/503"] * 15)) == [503] * 15
    lark_receiver.wait_for_cards(2)
    assert asyncio.run(hammer(server.url, ["/status/503"] * 135)) == [503] * 135
    lark_receiver.wait_for_cards(3)
    output = server.terminate()
    titles = [card_full_title(card) for card in lark_receiver.cards]
    assert len(titles) == 3, (titles, output)
    assert titles[0] == "🔴 🆕 503 GET /status/{status} · orders · production"
    assert re.fullmatch(
        r"🔴 📈 503 GET /status/\{status\}: now 1\d times in \d+ s · orders · production", titles[1]
    )
    assert re.fullmatch(
        r"🔴 📈 503 GET /status/\{status\}: now 1\d\d times in \d+ s · orders · production", titles[2]
    )
    assert "(crossed 10)" in str(lark_receiver.cards[1]) and "(crossed 100)" in str(lark_receiver.cards[2])


def test_an_error_that_stays_quiet_gets_one_recovered_card_from_the_fleet(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_RATE_LIMIT="1",
        LARK_ALERT_RECOVERY_AFTER="1",
        LARK_ALERT_CHECK_INTERVAL="0.2",
        LARK_ALERT_ESCALATE_AT="",
    )
    assert asyncio.run(hammer(server.url, ["/teapot"] * 20)) == [418] * 20
    lark_receiver.wait_for_cards(2)
    # A second error's recovery comes seconds of sweeps later: a second card for the first would be in.
    assert asyncio.run(hammer(server.url, ["/conflict"] * 5)) == [409] * 5
    lark_receiver.wait_for_cards(4)
    output = server.terminate()
    titles = [card_full_title(card) for card in lark_receiver.cards]
    assert len(titles) == 4, (titles, output)
    assert titles[0] == "🟠 🆕 418 GET /teapot · orders · production"
    assert re.fullmatch(r"🟢 418 GET /teapot: quiet for \d+ s · orders · production", titles[1])
    assert "after 20 times in " in shown_text(lark_receiver.cards[1])
    assert titles[2] == "🟠 🆕 409 GET /conflict · orders · production"
    assert re.fullmatch(r"🟢 409 GET /conflict: quiet for \d+ s · orders · production", titles[3])
