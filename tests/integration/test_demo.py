"""The demo, as the README runs it: one card per kind of failure, alone or as a fleet sharing Redis."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from demo_app.app import FAILURES
from demo_app.traffic import CALLS, fire

from ..compose import environment as compose_environment
from ..compose import load_compose, option
from ..conftest import SHARED_REDIS_URL, card_title, free_port
from .conftest import Process, Server

pytestmark = pytest.mark.integration

EXPECTED_TITLES = {
    "500 GET /orders/{order_id}/total",
    "404 GET /orders/{order_id}",
    "409 POST /orders/{order_id}/cancel",
    "422 POST /payments",
    "502 GET /inventory/{sku}",
    "503 GET /reports/export",
    "504 GET /search",
    "404 GET /wp-login.php",
}


def test_the_expected_titles_cover_every_listed_failure() -> None:
    assert len(EXPECTED_TITLES) == len(FAILURES)
    listed = {(method, path.split("?")[0]) for method, path, _ in FAILURES}
    assert listed <= {(call.method, call.path.split("?")[0]) for call in CALLS}


def test_demo_once_with_redis_reports_one_alert_per_kind_of_failure(
    spawn: Callable[..., Process], redis_prefix: str
) -> None:
    demo = spawn(
        "demo_app", "--once", "--port", "0", REDIS_URL=SHARED_REDIS_URL, LARK_ALERT_REDIS_PREFIX=redis_prefix
    )
    assert demo.process.wait(timeout=120) == 0, demo.output()
    output = demo.output()
    assert f"Dedup:  Redis at REDIS_URL, keys under {redis_prefix}" in output
    assert f"8 alerts for {len(CALLS)} failing requests (repeats deduplicated):" in output
    for title in EXPECTED_TITLES:
        assert f" {title} · " in output
    assert "Inbox:  http://127.0.0.1:" in output


def test_two_replicas_as_in_docker_compose_raise_one_card_per_failure_between_them(
    spawn: Callable[..., Process], serve: Callable[..., Server], redis_prefix: str
) -> None:
    """docker-compose.yml's commands and environment, with its service names mapped to loopback."""
    services = load_compose()["services"]
    lark_command = services["lark"]["command"]
    inbox_port, webhook_port = free_port(), free_port()
    inbox = spawn(
        "demo_app.inbox",
        "--port", str(inbox_port),
        "--webhook-port", str(webhook_port),
        "--token", option(lark_command, "--token"),
    )  # fmt: skip
    inbox.wait_for("Inbox:")
    settings = compose_environment(services["app-1"])
    settings["LARK_WEBHOOK_URL"] = settings["LARK_WEBHOOK_URL"].replace(
        f"lark:{option(lark_command, '--webhook-port')}", f"127.0.0.1:{webhook_port}"
    )
    settings.update(REDIS_URL=SHARED_REDIS_URL, LARK_ALERT_REDIS_PREFIX=redis_prefix)
    replicas = [serve(app="demo_app.app:app", ready_path="/healthz", **settings) for _ in range(2)]

    results = fire([replica.url for replica in replicas])
    assert len(results) == 2 * len(CALLS) and all(result.status_code >= 400 for result in results)
    for replica in replicas:
        replica.terminate()  # lifespan shutdown delivers what is pending

    cards = httpx.get(f"http://127.0.0.1:{inbox_port}/_alerts/cards.json", timeout=10).json()
    assert sorted(card_title(card) for card in cards) == sorted(EXPECTED_TITLES)
    assert inbox.interrupt() == 0, inbox.output()


def test_the_traffic_script_needs_base_urls(spawn: Callable[..., Process]) -> None:
    traffic = spawn("demo_app.traffic", "not-a-url")
    assert traffic.process.wait(timeout=60) == 2
    assert "usage: python -m demo_app.traffic BASE_URL" in traffic.output()
