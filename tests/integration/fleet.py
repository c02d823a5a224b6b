"""What every Redis topology must give a fleet, as scenarios run by each topology's tests:
one card per error across the workers, a Lark budget they share, and a master's failover
that costs no request, at most one extra card per process per error, and a few seconds of
per-process dedup."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import card_title, wait_until
from .conftest import Server
from .test_uvicorn import hammer

WORKERS = 2
IDENTICAL = ["/boom/value"] * 200
DISTINCT = [f"/status/{status}" for status in range(400, 600)]  # 200 errors, each its own card


def key_prefix() -> str:
    return f"lark-alert-test:{uuid.uuid4().hex}:"


def titles(lark: LarkReceiver) -> list[str]:
    return [card_title(card) for card in lark.cards]


def each_error_is_reported_once(serve: Callable[..., Server], lark: LarkReceiver, **redis: str) -> None:
    """Hundreds of identical and of distinct errors at two workers: each error once, on a card or in a
    digest, and every post accepted by Lark (the budget is shared)."""
    server = serve(
        workers=WORKERS,
        LARK_WEBHOOK_URL=lark.url,
        LARK_ALERT_REDIS_PREFIX=key_prefix(),
        LARK_ALERT_QUEUE_SIZE="2",
        LARK_ALERT_MAX_IN_FLIGHT="1",
        LARK_ALERT_SHUTDOWN_TIMEOUT="60",
        **redis,
    )
    paths = [path for pair in zip(IDENTICAL, DISTINCT, DISTINCT, strict=True) for path in pair]
    statuses = asyncio.run(hammer(server.url, paths, concurrency=40))
    assert statuses == [500 if path.startswith("/boom") else int(path[8:]) for path in paths]
    output = server.terminate()
    assert [request.answer_code for request in lark.requests] == [0] * len(lark.requests), output
    singles = [title for title in titles(lark) if "more errors since" not in title]
    digested = sum(int(title.split()[0]) for title in titles(lark) if "more errors since" in title)
    assert len(set(singles)) == len(singles), output
    assert len(singles) + digested == len(DISTINCT) + 1, output
    assert "Redis is unreachable" not in output


class Storm(threading.Thread):
    """Rounds of requests until stopped: each round a new error ten times, and an old one ten times."""

    def __init__(self, url: str, known_path: str) -> None:
        super().__init__(daemon=True)
        self._url = url
        self._known_path = known_path
        self._stopping = threading.Event()
        self.first_round = threading.Event()
        self.new_statuses: list[int] = []
        self.wrong_answers: list[tuple[str, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for status in range(402, 590):
                paths = [f"/status/{status}"] * 10 + [self._known_path] * 10
                answers = asyncio.run(hammer(self._url, paths, concurrency=20))
                self.new_statuses.append(status)
                self.wrong_answers += [
                    (path, answer)
                    for path, answer in zip(paths, answers, strict=True)
                    if answer != int(path[8:])
                ]
                self.first_round.set()
                # Pacing, so that the new errors' cards fit Lark's limits: one new error a second.
                if self._stopping.wait(1.0):
                    return
        except BaseException as error:  # shown by stop()
            self.error = error
            self.first_round.set()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)
        if self.error is not None:
            raise self.error


def outages_are_over(server: Server) -> bool:
    output = server.output()
    unreachable = output.count("Redis is unreachable")
    return unreachable >= 1 and output.count("Redis is reachable again") == unreachable


def a_failover_mid_storm_costs_nothing(
    serve: Callable[..., Server],
    lark: LarkReceiver,
    kill_master: Callable[[str], None],
    is_promoted: Callable[[], bool],
    **redis: str,
) -> None:
    """`kill_master(prefix)` kills the master holding the storm's keys mid-storm; `is_promoted()` says
    when a replica has taken over. Every request is answered, each error has at most one extra card per
    process, and once every worker is back on Redis, dedup is fleet-wide again."""
    prefix = key_prefix()
    server = serve(
        workers=WORKERS,
        LARK_WEBHOOK_URL=lark.url,
        LARK_ALERT_REDIS_PREFIX=prefix,
        LARK_ALERT_SHUTDOWN_TIMEOUT="30",
        **redis,
    )
    assert asyncio.run(hammer(server.url, ["/status/401"] * 40)) == [401] * 40
    lark.wait_for_cards(1)
    storm = Storm(server.url, "/status/401")
    storm.start()
    try:
        assert storm.first_round.wait(30)
        kill_master(prefix)
        wait_until(is_promoted, timeout=30, interval=0.1, what="a replica to become the master")
        wait_until(lambda: outages_are_over(server), timeout=30, interval=0.1, what="workers back on Redis")
    except AssertionError as error:
        raise AssertionError(server.output()) from error
    finally:
        storm.stop()
    assert storm.wrong_answers == []  # every request answered, as if nothing happened
    assert asyncio.run(hammer(server.url, ["/status/599"] * 200, concurrency=40)) == [599] * 200
    output = server.terminate()
    cards = Counter(titles(lark))
    assert cards["599 GET /status/{status}"] == 1, output  # fleet-wide dedup again
    # A worker that had not seen 401 before the failover may have reported it in process.
    for status in [401, *storm.new_statuses]:
        assert 1 <= cards[f"{status} GET /status/{{status}}"] <= 1 + WORKERS, (status, output)
    assert [request.answer_code for request in lark.requests] == [0] * len(lark.requests), output
    assert 1 <= output.count("Redis is unreachable") <= WORKERS, output  # one warning per process per outage
