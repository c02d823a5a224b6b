"""Fault injection with real processes: Redis dying mid-storm, Lark misbehaving, SIGTERM, rate limits."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import pytest

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, RedisServer, card_title, wait_until
from .conftest import Process, Server
from .test_uvicorn import hammer

pytestmark = pytest.mark.integration

Serve = Callable[..., Server]


def titles(lark: LarkReceiver) -> list[str]:
    return [card_title(card) for card in lark.cards]


def test_redis_dying_mid_storm_costs_no_request_and_dedup_resumes(
    serve: Serve, lark_receiver: LarkReceiver, own_redis: RedisServer
) -> None:
    server = serve(workers=2, LARK_WEBHOOK_URL=lark_receiver.url, REDIS_URL=own_redis.url)
    assert asyncio.run(hammer(server.url, ["/status/401"] * 60)) == [401] * 60
    lark_receiver.wait_for_cards(1)

    own_redis.kill()
    assert asyncio.run(hammer(server.url, ["/status/402"] * 200)) == [402] * 200  # every request answered
    wait_until(
        lambda: titles(lark_receiver).count("402 GET /status/{status}") >= 1,
        what="an alert during the outage",
    )
    assert titles(lark_receiver).count("402 GET /status/{status}") <= 2  # at most one per process

    own_redis.start()
    probes = iter(range(403, 500))

    def both_workers_back() -> bool:
        asyncio.run(hammer(server.url, [f"/status/{next(probes)}"] * 4))
        return server.output().count("Redis is reachable again") >= 2

    wait_until(both_workers_back, timeout=60, interval=0.5, what="both workers to use Redis again")
    assert asyncio.run(hammer(server.url, ["/status/599"] * 200)) == [599] * 200
    output = server.terminate()
    assert titles(lark_receiver).count("599 GET /status/{status}") == 1, output  # fleet-wide dedup again
    assert output.count("Redis is unreachable") == 2  # one warning per process per outage


def test_alerts_arrive_once_lark_recovers(serve: Serve, lark_receiver: LarkReceiver) -> None:
    lark_receiver.fail_next("http_500", "frequency_limited", "drop")
    server = serve(LARK_WEBHOOK_URL=lark_receiver.url, LARK_ALERT_SHUTDOWN_TIMEOUT="15")
    assert asyncio.run(hammer(server.url, ["/teapot"])) == [418]
    lark_receiver.wait_for_cards(1, timeout=20)
    server.terminate()
    assert [request.http_status for request in lark_receiver.requests] == [500, 200, None, 200]


def test_sigterm_right_after_an_error_still_delivers_the_alert(
    serve: Serve, make_lark_receiver: object, redis_prefix: str
) -> None:
    lark: LarkReceiver = make_lark_receiver(delay=1.0)  # type: ignore[operator]
    server = serve(
        LARK_WEBHOOK_URL=lark.url, REDIS_URL=SHARED_REDIS_URL, LARK_ALERT_REDIS_PREFIX=redis_prefix
    )
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/boom/value").status_code == 500
    output = server.terminate()  # at once: the post is still waiting on the slow webhook
    assert titles(lark) == ["500 GET /boom/{kind}"], output
    assert "raised 1" in output and "sent 1" in output  # the counters, logged at shutdown


def test_four_workers_and_200_distinct_errors_stay_within_lark_limits(
    serve: Serve, lark_receiver: LarkReceiver, redis_prefix: str
) -> None:
    server = serve(
        workers=4,
        LARK_WEBHOOK_URL=lark_receiver.url,
        REDIS_URL=SHARED_REDIS_URL,
        LARK_ALERT_REDIS_PREFIX=redis_prefix,
        LARK_ALERT_QUEUE_SIZE="2",
        LARK_ALERT_MAX_IN_FLIGHT="1",
        LARK_ALERT_SHUTDOWN_TIMEOUT="60",
    )
    paths = [f"/status/{status}" for status in range(400, 600)] * 4
    assert sorted(asyncio.run(hammer(server.url, paths, concurrency=40))) == sorted(int(p[8:]) for p in paths)
    output = server.terminate()
    answers = [
        f"{request.received_at % 1000:.3f}:{request.answer_code}" for request in lark_receiver.requests
    ]
    assert all(request.answer_code == 0 for request in lark_receiver.requests), (" ".join(answers), output)
    singles = [title for title in titles(lark_receiver) if "more errors since" not in title]
    digested = sum(int(title.split()[0]) for title in titles(lark_receiver) if "more errors since" in title)
    assert len(set(singles)) == len(singles)
    assert len(singles) + digested == 200, output  # each distinct error: its own card or a digest line


def test_a_hanging_webhook_holds_uvicorn_shutdown_for_the_timeout_once(
    serve: Serve, make_lark_receiver: object
) -> None:
    lark: LarkReceiver = make_lark_receiver(hang_seconds=60)  # type: ignore[operator]
    lark.fail_next(*["hang"] * 10)
    server = serve(LARK_WEBHOOK_URL=lark.url, LARK_ALERT_SHUTDOWN_TIMEOUT="2")
    statuses = list(range(400, 404))
    assert asyncio.run(hammer(server.url, [f"/status/{status}" for status in statuses])) == statuses
    lark.wait_for_in_flight(1)
    started = time.monotonic()
    output = server.terminate()
    shutdown_seconds = time.monotonic() - started
    assert "4 alerts still pending after 2.0s at shutdown" in output
    # Counted, and the counters logged at WARNING: shown even where nothing handles INFO.
    assert re.search(r"WARNING lark_alert_middleware: .*raised 4, .*dropped 4", output), output
    for noise in ("Task was destroyed", "Exception ignored", "Traceback", "posting failed"):
        assert noise not in output, output
    assert shutdown_seconds < 2 + 4, output  # the timeout, once, plus the server's own exit


def test_a_script_exiting_with_alerts_stuck_on_a_hanging_webhook_exits_quietly(
    spawn: Callable[..., Process], make_lark_receiver: object
) -> None:
    lark: LarkReceiver = make_lark_receiver(hang_seconds=60)  # type: ignore[operator]
    lark.fail_next(*["hang"] * 10)
    started = time.monotonic()
    environment = {"LARK_WEBHOOK_URL": lark.url, "LARK_ALERT_SHUTDOWN_TIMEOUT": "2"}
    script = spawn("tests.integration.script_app", "4", **environment)
    assert script.process.wait(timeout=60) == 0, script.output()
    seconds = time.monotonic() - started
    output = script.output()
    assert "requests done" in output, output
    assert "4 alerts still pending after 2.0s at shutdown" in output
    assert re.search(r"WARNING lark_alert_middleware: .*raised 4, .*dropped 4", output), output
    # The exit hook neither waits a second time nor leaves asyncio's complaints behind.
    for noise in ("at exit", "Task was destroyed", "Exception ignored", "Traceback", "posting failed"):
        assert noise not in output, output
    assert seconds < 2 + 8, output  # start-up, the timeout once, exit
