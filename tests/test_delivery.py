"""Delivery against the Lark-compatible receiver: retries, refusals, throttling and digests."""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import tracemalloc
import weakref
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from lark_alert_middleware._card.sample import sample_event
from lark_alert_middleware._lark.limits import InProcessRateBudget
from lark_alert_middleware._lark.sinks import LarkSink, RetryPolicy
from lark_alert_middleware._lark.webhook import FREQUENCY_LIMITED, LarkAnswer, LarkWebhook, Outcome
from lark_alert_middleware._pipeline.clients import shared_clients
from lark_alert_middleware._pipeline.digest import Digest
from lark_alert_middleware._pipeline.loop import background_loop
from lark_alert_middleware._pipeline.pipeline import Pipeline
from lark_alert_middleware._records import ErrorEvent, RenderedCard
from lark_alert_middleware._sources.asgi import LarkAlertMiddleware
from lark_alert_middleware._stats import Counters
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import RedisServer, card_text, card_title, find_middleware, keep_the_alerter_busy, wait_until

T = TypeVar("T")
FAST = RetryPolicy(
    attempts=4, first_delay=0.02, max_delay=0.1, frequency_limited_delay=0.02, total_seconds=10
)
CARD = RenderedCard({"elements": []}, '{"elements":[]}', 15)


def on_alerter_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run where the sink runs in production: the alerter thread, with its shared HTTP client."""
    return background_loop.submit(coroutine).result(timeout=60)


def quiet_alerter(caplog: pytest.LogCaptureFixture, **options: Any) -> Pipeline:
    """The alerter of a middleware without a webhook, its log lines silenced."""
    caplog.set_level(logging.CRITICAL, logger="lark_alert_middleware")
    alerter = LarkAlertMiddleware(failing_app(), **options).alerter
    assert alerter is not None
    return alerter


def sink_for(
    lark: LarkReceiver, *, secret: str | None = None, timeout: float = 5.0, policy: RetryPolicy = FAST
) -> tuple[LarkSink, Counters]:
    counters = Counters()
    sink = LarkSink(
        LarkWebhook(lark.url, secret, timeout), InProcessRateBudget(), counters, shared_clients.http, policy
    )
    return sink, counters


@pytest.mark.parametrize("fault", ["http_500", "http_429", "frequency_limited", "drop"])
def test_retryable_answers_are_retried_until_lark_accepts(lark_receiver: LarkReceiver, fault: str) -> None:
    lark_receiver.fail_next(fault, fault)  # type: ignore[arg-type]
    sink, counters = sink_for(lark_receiver)
    assert on_alerter_thread(sink.send(CARD, "test alert"))
    assert len(lark_receiver.requests) == 3
    assert (counters.snapshot().sent, counters.snapshot().retried) == (1, 2)


def test_a_hanging_webhook_times_out_and_is_retried(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(hang_seconds=10)  # type: ignore[operator]
    lark.fail_next("hang")
    sink, counters = sink_for(lark, timeout=0.3)
    assert on_alerter_thread(sink.send(CARD, "test alert"))
    assert counters.snapshot().retried == 1 and len(lark.cards) == 1


def test_gives_up_after_the_last_attempt(
    lark_receiver: LarkReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    lark_receiver.fail_next(*["http_500"] * 10)
    sink, counters = sink_for(lark_receiver)
    assert not on_alerter_thread(sink.send(CARD, "test alert"))
    assert len(lark_receiver.requests) == FAST.attempts
    assert counters.snapshot().failed == 1
    assert any(
        "gave up posting test alert" in r.getMessage() and "HTTP 500" in r.getMessage()
        for r in caplog.records
    )


def test_retry_delays_back_off_exponentially_with_jitter_and_honour_lark_s_hints() -> None:
    policy = RetryPolicy(first_delay=1.0, max_delay=30.0, frequency_limited_delay=2.0)
    server_error = LarkAnswer(Outcome.RETRY, "boom", http_status=500)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 30.0), (9, 30.0)]:
        delays = {policy.delay(attempt, server_error) for _ in range(200)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 100  # jittered: replicas that failed together do not retry together
    frequency_limited = LarkAnswer(Outcome.RETRY, "slow down", code=FREQUENCY_LIMITED)
    assert min(policy.delay(1, frequency_limited) for _ in range(200)) >= 2.0
    told_when = LarkAnswer(Outcome.RETRY, "later", http_status=429, retry_after=7.0)
    assert min(policy.delay(1, told_when) for _ in range(200)) >= 7.0
    told_too_late = LarkAnswer(Outcome.RETRY, "much later", http_status=429, retry_after=3600.0)
    assert max(policy.delay(1, told_too_late) for _ in range(200)) <= 30.0


def test_retrying_stops_at_the_total_time_budget_before_the_attempts_run_out(
    lark_receiver: LarkReceiver,
) -> None:
    lark_receiver.fail_next(*["http_500"] * 200)
    policy = RetryPolicy(attempts=100, first_delay=0.05, max_delay=0.05, total_seconds=0.5)
    sink, counters = sink_for(lark_receiver, policy=policy)
    assert not on_alerter_thread(sink.send(CARD, "test alert"))
    # Delays of at least 25 ms inside half a second: never the hundred attempts allowed.
    assert 2 <= len(lark_receiver.requests) <= 21
    assert counters.snapshot().failed == 1


def test_a_signature_refusal_is_not_retried_and_logged_once_with_the_fix(
    make_lark_receiver: object, caplog: pytest.LogCaptureFixture
) -> None:
    lark: LarkReceiver = make_lark_receiver(secret="right-secret", token="tok-never-logged")  # type: ignore[operator]
    sink, counters = sink_for(lark, secret="wrong-secret")
    with caplog.at_level(logging.DEBUG):
        assert not on_alerter_thread(sink.send(CARD, "first"))
        assert not on_alerter_thread(sink.send(CARD, "second"))
    assert [r.answer_code for r in lark.requests] == [19021, 19021]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "LARK_WEBHOOK_SECRET" in errors[0] and "clock" in errors[0]
    assert not any("tok-never-logged" in r.getMessage() for r in caplog.records)
    assert counters.snapshot().failed == 2


@pytest.mark.parametrize(
    ("receiver_options", "advice"),
    [({"keyword": "ALERT"}, "LARK_ALERT_KEYWORD"), ({"allowed_ips": ["10.0.0.1"]}, "IP allowlist")],
)
def test_permanent_refusals_name_the_fix(
    make_lark_receiver: object,
    caplog: pytest.LogCaptureFixture,
    receiver_options: dict[str, object],
    advice: str,
) -> None:
    lark: LarkReceiver = make_lark_receiver(**receiver_options)  # type: ignore[operator]
    app = failing_app(webhook_url=lark.url)
    with TestClient(app) as client:
        client.get("/teapot")
    assert len(lark.requests) == 1
    assert any(advice in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_the_keyword_prefixes_every_card_so_keyword_bots_accept_them(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(keyword="ALERT")  # type: ignore[operator]
    with TestClient(failing_app(webhook_url=lark.url, keyword="ALERT")) as client:
        client.get("/teapot")
    [card] = lark.cards
    assert card_title(card).startswith("ALERT ")


def test_posts_stay_within_five_a_second(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, status_codes="400-599")
    with TestClient(app) as client:
        for status in range(400, 412):
            client.get(f"/status/{status}")
    assert len(lark_receiver.cards) == 12
    assert all(request.answer_code == 0 for request in lark_receiver.requests)  # never frequency limited


def test_what_overflows_the_queue_is_folded_into_one_digest(make_lark_receiver: object) -> None:
    lark: LarkReceiver = make_lark_receiver(delay=0.3)  # type: ignore[operator]
    app = failing_app(webhook_url=lark.url, queue_size=2, max_in_flight=1)
    with TestClient(app) as client:
        for status in range(400, 420):
            client.get(f"/status/{status}")
    alerter = find_middleware(app).alerter
    assert alerter is not None
    digests = [card for card in lark.cards if "more errors since" in card_title(card)]
    singles = [card for card in lark.cards if card not in digests]
    assert len(digests) == 1
    digest_total = int(card_title(digests[0]).split()[0])
    assert len(singles) + digest_total == 20  # every error is accounted for
    assert alerter.stats().coalesced == digest_total
    assert "GET /status/{status}" in card_text(digests[0])


def client_error(status: int, path: str, route: str | None = None) -> ErrorEvent:
    return replace(sample_event(), status_code=status, path=path, route=route, exception=None)


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def test_a_digest_shows_paths_and_fingerprints_redacted_as_cards_do(caplog: pytest.LogCaptureFixture) -> None:
    alerter = quiet_alerter(caplog, scrub=lambda text: text.replace("alice@example.com", "[a user]"))
    digest = Digest()
    digest.add(f"GET /verify/{JWT} 401", client_error(401, f"/verify/{JWT}"))
    digest.add("GET /users/{email} 404", client_error(404, "/users/alice@example.com"))
    digest.add("GET /reset/{token} 404", client_error(404, "/reset/s3cr3t-reset-value", "/reset/{token}"))
    summary = digest.take()
    assert summary is not None
    text = alerter.cards.digest_card(summary).rendered.json_text
    assert JWT not in text and text.count("[redacted jwt]") == 2
    assert "alice@example.com" not in text and "[a user]" in text
    assert "s3cr3t-reset-value" not in text and "/reset/[redacted token]" in text


def test_a_digest_past_its_bound_on_kinds_counts_every_error(caplog: pytest.LogCaptureFixture) -> None:
    alerter = quiet_alerter(caplog)
    digest = Digest(max_kinds=16)
    for index in range(20):
        digest.add(f"GET /kind/{index} 500", replace(sample_event(), path=f"/kind/{index}"))
    summary = digest.take()
    assert summary is not None
    text = alerter.cards.digest_card(summary).rendered.json_text
    # 15 lines shown; one more kind was counted, and 4 errors past the bound only as errors.
    assert "… and 5 more errors of 2 or more other kinds" in text


class Upload:
    """Stands for what a failing handler holds in its frame: a request body read into memory."""


def failure_holding(upload: Upload) -> ErrorEvent:
    try:
        raise RuntimeError(f"could not store an upload of {len(vars(upload))} fields")
    except RuntimeError as error:
        return replace(sample_event(), exception=error)


def test_alerts_waiting_for_their_turn_keep_no_frames_alive(lark_receiver: LarkReceiver) -> None:
    alerter = LarkAlertMiddleware(failing_app(), webhook_url=lark_receiver.url).alerter
    assert alerter is not None
    uploads = [Upload() for _ in range(8)]
    alive = [weakref.ref(upload) for upload in uploads]
    for index, upload in enumerate(uploads):
        alerter.submit(f"POST /uploads/{index} 500", failure_holding(upload))
    del uploads, upload
    wait_until(lambda: alerter.stats().sent >= 1, what="the first card")
    gc.collect()
    assert alerter.pending >= 3  # Lark takes 5 posts a second: the rest wait in the queue...
    assert [ref() for ref in alive] == [None] * 8  # ...without the frames of their tracebacks
    assert alerter.flush(30)
    assert len(lark_receiver.cards) == 8
    for card in lark_receiver.cards:
        assert "RuntimeError" in card_text(card) and "in failure_holding" in card_text(card)


def test_repeats_are_reported_in_the_next_alert(lark_receiver: LarkReceiver) -> None:
    app = failing_app(webhook_url=lark_receiver.url, rate_limit=1)
    requests = 0
    with TestClient(app) as client:
        for _ in range(5):
            client.get("/conflict")
            requests += 1

        def second_alert() -> bool:
            nonlocal requests
            client.get("/conflict")
            requests += 1
            return len(lark_receiver.cards) >= 2

        wait_until(second_alert, timeout=15, interval=0.05, what="an alert after the one-second window")
    second = card_text(lark_receiver.cards[1])
    assert "since the previous alert" in second
    repeated = re.search(r"Repeated (\d+) times", second)
    assert repeated is not None, second
    # The four repeats before the loop, and those of the loop before the request that alerted.
    assert 4 <= int(repeated.group(1)) <= requests - 2


def test_a_hung_redis_neither_holds_requests_back_nor_stops_alerts(
    own_redis: RedisServer, lark_receiver: LarkReceiver
) -> None:
    app = failing_app(webhook_url=lark_receiver.url, redis_url=own_redis.url, redis_timeout=0.2)
    with TestClient(app) as client:  # start-up connects to Redis and loads its scripts
        alerter = find_middleware(app).alerter
        assert alerter is not None
        own_redis.freeze()
        try:
            statuses = [client.get(f"/status/{status}").status_code for status in (400, 401, 402)]
            assert alerter.flush(30)
        finally:
            own_redis.thaw()
    assert statuses == [400, 401, 402]
    assert sorted(card_title(card) for card in lark_receiver.cards) == [
        f"{status} GET /status/{{status}}" for status in (400, 401, 402)
    ]
    assert alerter.stats().sent == 3


def test_a_storm_of_distinct_errors_keeps_memory_bounded(caplog: pytest.LogCaptureFixture) -> None:
    alerter = quiet_alerter(caplog, dedup_capacity=1000, queue_size=10)
    event = sample_event()

    def storm(count: int, offset: int) -> None:
        for index in range(offset, offset + count):
            alerter.submit(f"GET /storm/{index} 500", event)

    storm(20_000, 0)
    assert alerter.flush(60)
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    storm(60_000, 20_000)
    assert alerter.flush(120)
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = alerter.stats()
    assert stats.raised == 80_000
    assert stats.sent + stats.coalesced >= 80_000 - stats.deduplicated  # nothing lost
    assert after - before < 2 * 1024 * 1024
    assert peak - before < 10 * 1024 * 1024


def test_the_counters_are_logged_at_info_and_at_warning_once_alerts_were_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerter = quiet_alerter(caplog)
    alerter.submit("GET /counted 500", sample_event())
    assert alerter.flush(10)
    caplog.set_level(logging.INFO, logger="lark_alert_middleware")
    alerter.log_stats()
    alerter.counters.add("dropped")
    alerter.log_stats()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "raised 1," in r.getMessage()]
    assert [level for level, _ in lines] == [logging.INFO, logging.WARNING]
    assert lines[0][1].endswith("sent 1, retried 0, failed 0, coalesced 0, dropped 0")
    assert lines[1][1].endswith("dropped 1")
    alerter.counters = Counters()  # nothing left for the exit hook to print after the suite


def test_a_burst_of_errors_wakes_the_alerter_once(caplog: pytest.LogCaptureFixture) -> None:
    alerter = quiet_alerter(caplog)
    release = keep_the_alerter_busy()
    loop = background_loop.loop()
    wake_ups: list[object] = []
    wake_up = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda *arguments: wake_ups.append(arguments) or wake_up(*arguments)  # type: ignore[method-assign]
    try:
        for _ in range(200):
            alerter.submit("GET /burst 500", sample_event())
    finally:
        del loop.call_soon_threadsafe
        release.set()
    assert len(wake_ups) == 1
    assert alerter.flush(30)
    stats = alerter.stats()
    assert (stats.raised, stats.deduplicated, alerter.pending) == (200, 199, 0)


def test_errors_handed_off_from_many_threads_at_once_are_all_taken(caplog: pytest.LogCaptureFixture) -> None:
    alerter = quiet_alerter(caplog)
    event = sample_event()

    def submit_many(thread: int) -> None:
        for _ in range(500):
            alerter.submit(f"GET /threads/{thread} 500", event)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, inside the hand-off too
    try:
        threads = [threading.Thread(target=submit_many, args=(number,)) for number in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert alerter.flush(60)  # none stranded: every hand-off reached the alerter thread
    stats = alerter.stats()
    assert (stats.raised, alerter.pending) == (2000, 0)
    # Each thread's error alerted once; the rest deduplicated, or folded into a digest by the
    # hand-off's own bound when the alerter fell behind.
    assert 1996 <= stats.deduplicated + stats.coalesced < 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_without_the_parents_work_and_alerts_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerter = quiet_alerter(caplog)
    release = keep_the_alerter_busy()
    alerter.submit("GET /parent 500", sample_event())  # handed off, not yet taken
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports through its exit code
        inherited_nothing = alerter.pending == 0
        alerter.submit("GET /child 500", sample_event())
        delivered = alerter.flush(10) and alerter.stats().raised == 1
        os._exit(0 if inherited_nothing and delivered else 1)
    release.set()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert alerter.flush(10) and alerter.stats().raised == 1  # the parent delivers its own


def test_an_error_arriving_as_lifespan_shutdown_ends_is_still_awaited_at_exit(
    make_lark_receiver: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="lark_alert_middleware")
    lark_receiver: LarkReceiver = make_lark_receiver(delay=0.5)  # type: ignore[operator]
    app = failing_app(webhook_url=lark_receiver.url)
    with TestClient(app) as client:
        alerter = find_middleware(app).alerter
        assert alerter is not None and client.get("/items/1").status_code == 404
        log_stats = alerter.log_stats

        def an_error_comes_in_meanwhile() -> None:  # after the drain, before shutdown is over
            log_stats()
            alerter.submit("GET /late 500", sample_event())

        alerter.log_stats = an_error_comes_in_meanwhile  # type: ignore[method-assign]
    assert len(lark_receiver.cards) == 1  # the late one is still on its way
    alerter.log_stats = log_stats  # type: ignore[method-assign]
    on_alerter_thread(alerter.shutdown())  # what the exit hook runs
    assert len(lark_receiver.cards) == 2
