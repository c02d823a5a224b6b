"""Routes across a fleet: two uvicorn workers sharing Redis send one card per route per error per window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import SHARED_REDIS_URL, LarkGroups, card_title
from .conftest import Server
from .test_uvicorn import hammer

pytestmark = pytest.mark.integration

ROUTES = """
    [[route]]
    name = "boom"
    match = { route = "/boom/*" }
    webhook_url_env = "PAYMENTS_LARK_WEBHOOK"
    webhook_secret_env = "PAYMENTS_LARK_SECRET"
    continue = true

    [[route]]
    name = "on-call"
    match = { status = "500-599" }
    webhook_url_env = "ONCALL_LARK_WEBHOOK"
    rate_limit = 300

    [[route]]
    name = "quiet"
    match = {}
"""


def test_two_workers_sharing_redis_send_one_card_per_route_per_error(
    serve: Callable[..., Server],
    lark_groups: LarkGroups,
    write_routes: Callable[[str], Path],
    redis_prefix: str,
) -> None:
    server = serve(
        workers=2,
        LARK_WEBHOOK_URL=lark_groups.quiet.url,
        LARK_ALERT_ROUTES=str(write_routes(ROUTES)),
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
    )
    paths = [f"/boom/value?n={index}" for index in range(200)] + [f"/items/{index}" for index in range(100)]
    statuses = asyncio.run(hammer(server.url, paths, concurrency=40))
    assert statuses == [500] * 200 + [404] * 100
    output = server.terminate()  # lifespan shutdown delivers what is pending
    assert [card_title(card) for card in lark_groups.payments.cards] == ["500 GET /boom/{kind}"], output
    assert [card_title(card) for card in lark_groups.on_call.cards] == ["500 GET /boom/{kind}"], output
    assert [card_title(card) for card in lark_groups.quiet.cards] == ["404 GET /items/{item_id}"], output
    assert "dropped 0" in output and "failed 0" in output
