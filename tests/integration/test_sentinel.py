"""Redis Sentinel: two uvicorn workers find the master through 3 sentinels of the module's own.

The tests run in this order on one setup: the last kills the master.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lark_alert_middleware.cli import main
from lark_alert_middleware.testing import LarkReceiver

from ..topologies import SERVICE_NAME, SentinelTopology
from .conftest import Server
from .fleet import a_failover_mid_storm_costs_nothing, each_error_is_reported_once

pytestmark = [pytest.mark.integration, pytest.mark.topology]

Serve = Callable[..., Server]


def test_check_finds_the_master_through_the_sentinels(
    redis_sentinels: SentinelTopology, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_sentinels.url)
    assert main(["check"]) == 0
    master = redis_sentinels.master()
    found = f"(sentinels: the master of {SERVICE_NAME!r} is 127.0.0.1:{master.port}; answered PING"
    assert found in capsys.readouterr().out


def test_check_reports_a_service_the_sentinels_do_not_know(
    redis_sentinels: SentinelTopology, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_sentinels.url.replace(SERVICE_NAME, "no-such-service"))
    assert main(["check"]) == 1
    assert "did not answer PING (MasterNotFoundError: No master found for 'no-such-service')" in (
        capsys.readouterr().err
    )


def test_two_workers_report_each_of_hundreds_of_errors_once(
    serve: Serve, lark_receiver: LarkReceiver, redis_sentinels: SentinelTopology
) -> None:
    each_error_is_reported_once(serve, lark_receiver, REDIS_URL=redis_sentinels.url)


def test_killing_the_master_mid_storm_costs_no_request_and_the_new_master_is_followed(
    serve: Serve, lark_receiver: LarkReceiver, redis_sentinels: SentinelTopology
) -> None:
    killed: list[int] = []

    def kill_master(prefix: str) -> None:
        master = redis_sentinels.master()
        killed.append(master.port)
        master.kill()

    def promoted() -> bool:
        return redis_sentinels.is_serving() and redis_sentinels.master().port not in killed

    a_failover_mid_storm_costs_nothing(
        serve, lark_receiver, kill_master, promoted, REDIS_URL=redis_sentinels.url
    )
