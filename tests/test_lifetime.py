"""A pipeline lives as long as something uses it: apps built and dropped (as in tests) leave nothing."""

from __future__ import annotations

import gc
import threading
import weakref

from fastapi.testclient import TestClient

from lark_alert_middleware._pipeline.pipeline import Pipeline
from lark_alert_middleware.testing import LarkReceiver

from .apps import failing_app
from .conftest import find_middleware, wait_until


def test_pipelines_of_dropped_apps_are_collected_with_their_checks(lark_receiver: LarkReceiver) -> None:
    pipelines: list[weakref.ref[Pipeline]] = []
    for _ in range(5):
        app = failing_app(webhook_url=lark_receiver.url, check_interval=0.1)
        assert TestClient(app, raise_server_exceptions=False).get("/boom/value").status_code == 500
        pipeline = find_middleware(app).alerter
        assert pipeline is not None and pipeline.flush(10)
        pipelines.append(weakref.ref(pipeline))
        del app, pipeline
    # Each pipeline's periodic check runs on the alerter loop; once it sees its pipeline unused, it ends.
    wait_until(lambda: gc.collect() >= 0 and all(ref() is None for ref in pipelines), what="pipelines freed")


def test_every_pipeline_and_destination_shares_one_card_thread() -> None:
    with LarkReceiver() as lark:
        for _ in range(5):
            # A scrub hook is the user's code: its cards are made on the card thread.
            app = failing_app(webhook_url=lark.url, scrub=lambda text: text)
            assert TestClient(app, raise_server_exceptions=False).get("/boom/value").status_code == 500
            pipeline = find_middleware(app).alerter
            assert pipeline is not None and pipeline.flush(10)
    card_threads = [thread for thread in threading.enumerate() if thread.name == "lark-alert-cards"]
    assert len(card_threads) == 1
