"""Redis down: new, escalation, recovered and the summary go on in-process, with one warning."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import RedisServer, card_full_title, client_for, wait_until

pytestmark = pytest.mark.anyio


async def test_with_redis_down_every_kind_of_card_is_made_in_process_with_one_warning(
    lark_receiver: LarkReceiver, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    own_redis.kill()
    due = datetime.now(timezone.utc).timestamp() + 2
    app = failing_app(
        webhook_url=lark_receiver.url,
        redis_url=own_redis.url,
        rate_limit=60,
        escalate_at="3",
        recovery_after=1,
        daily_summary=datetime.fromtimestamp(due, timezone.utc).strftime("%H:%M:%S"),
        check_interval=0.1,
    )
    with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"):
        async with client_for(app) as client:
            for _ in range(3):
                assert (await client.get("/conflict")).status_code == 409

        def titles() -> list[str]:
            return [card_full_title(card) for card in lark_receiver.cards]

        wait_until(lambda: len(titles()) == 4, what="the first, escalation, recovered and summary cards")
    assert titles()[0] == "🟠 🆕 409 GET /conflict · orders · production"
    assert any(title.startswith("🟠 📈 409 GET /conflict: now 3 times") for title in titles())
    assert any(title.startswith("🟢 409 GET /conflict: quiet for ") for title in titles())
    assert "📋 Daily summary: 3 errors · orders · production" in titles()
    warnings = [record.getMessage() for record in caplog.records]
    assert [message for message in warnings if "Redis is unreachable" in message] == warnings[:1]
    assert len(warnings) == 1, warnings
