"""The relay's fixtures: the tools' documented payloads, unique alert groups, a served relay.

The payloads in tests/fixtures/relay/ come from the tools' documentation: Alertmanager's
webhook format (version 4, prometheus.io "webhook_config"), filled in with the example alerting
rule of Prometheus's documentation (HighRequestLatency); Grafana's "Configure the webhook
notifier" example, as published; a CLEF event as Seq.App.HttpRequest posts it with the body
template in our README (values from serilog-formatting-compact's examples); and the generic shape.
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from lark_alert_middleware.testing import LarkReceiver

from ..conftest import SHARED_REDIS_URL, wait_until
from ..servers import Server, start_uvicorn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "relay"
STARTS_AT = "2026-01-01T09:52:26.739266876Z"
ENDS_AT = "2026-01-01T11:15:26.739266876Z"  # 1 h 23 min later
TOKEN = "relay-test-token-0123456789abcdef"
GRAFANA_SECRET = "grafana-hmac-secret-0123456789"


def payload(name: str) -> dict[str, Any]:
    """A documented payload from tests/fixtures/relay/, as a fresh dict."""
    document = json.loads((FIXTURES / f"{name}.json").read_text())
    assert isinstance(document, dict)
    return document


FIRING_3 = ("firing", "firing", "firing")


def alertmanager_group(tag: str, statuses: tuple[str, ...] = FIRING_3) -> dict[str, Any]:
    """The documented Alertmanager notification, its alerts renamed after `tag` (so that tests
    sharing a relay never share an alert), with the given status per alert."""
    document = payload("alertmanager")
    alerts = document["alerts"]
    while len(alerts) < len(statuses):
        alerts.append(copy.deepcopy(alerts[-1]))
    document["alerts"] = alerts = alerts[: len(statuses)]
    document["groupLabels"] = {"alertname": tag}
    document["commonLabels"]["alertname"] = tag
    for index, (alert, status) in enumerate(zip(alerts, statuses, strict=True)):
        alert["labels"]["alertname"] = tag
        alert["labels"]["instance"] = f"app-{index + 1}:8000"
        alert["fingerprint"] = hashlib.blake2b(f"{tag} {index}".encode(), digest_size=8).hexdigest()
        alert["status"] = status
        alert["startsAt"] = STARTS_AT
        if status == "resolved":
            alert["endsAt"] = ENDS_AT
    # As Alertmanager computes them: the labels every alert of the group has.
    first, *others = (alert["labels"] for alert in alerts)
    document["commonLabels"] = {
        name: value for name, value in first.items() if all(other.get(name) == value for other in others)
    }
    return document


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def titles(receiver: LarkReceiver, containing: str) -> list[str]:
    """The titles of the cards received whose title contains `containing`."""
    found = [str(card["header"]["title"]["content"]) for card in receiver.cards]
    return [title for title in found if containing in title]


def cards_about(receiver: LarkReceiver, containing: str) -> list[dict[str, Any]]:
    return [card for card in receiver.cards if containing in json.dumps(card, ensure_ascii=False)]


@dataclass
class ServedRelay:
    """A relay under uvicorn, the Lark receiver it posts to, and a client that carries the token."""

    server: Server
    lark: LarkReceiver

    @property
    def url(self) -> str:
        return self.server.url

    def post(
        self,
        path: str,
        document: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        authorised: bool = True,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if authorised:
            sent.setdefault("Authorization", f"Bearer {TOKEN}")
        body = content if content is not None else json.dumps(document).encode()
        return httpx.post(self.url + path, content=body, headers=sent, timeout=30)

    def sentinel(self, tag: str) -> None:
        """Post one more alert and wait for its card: whatever the relay made of what was posted
        before it (same path, same priority) has been posted by then, but may still be on its way
        on another connection: wait for the cards expected first, then use this to see no more came."""
        name = unique(f"Sentinel{tag}")
        document = alertmanager_group(name, ("firing",))
        assert self.post("/alertmanager", document).status_code == 202
        wait_until(lambda: bool(titles(self.lark, name)), timeout=20, what=f"the sentinel {name}")
        wait_until(lambda: self.lark.in_flight == 0, timeout=20, what="no post in flight")


def _delete_keys(prefix: str) -> None:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def module_redis_prefix() -> Iterator[str]:
    """A key prefix on the shared Redis for one module's relay; its keys are deleted afterwards."""
    prefix = f"lark-alert-test:{uuid.uuid4().hex}:"
    yield prefix
    _delete_keys(prefix)


def relay_environment(lark: LarkReceiver, prefix: str, **more: str) -> dict[str, str]:
    return {
        "LARK_WEBHOOK_URL": lark.url,
        "LARK_RELAY_TOKEN": TOKEN,
        "REDIS_URL": SHARED_REDIS_URL,
        "LARK_ALERT_REDIS_PREFIX": prefix,
        "SEQ_URL": "https://seq.example.com/#/events?filter=RequestId%3D%27{request_id}%27",
        **more,
    }


@pytest.fixture(scope="module")
def served_relay(tmp_path_factory: pytest.TempPathFactory, module_redis_prefix: str) -> Iterator[ServedRelay]:
    """One relay (one uvicorn worker, access log on) per test module, on the shared Redis."""
    lark = LarkReceiver().start()
    log_dir = tmp_path_factory.mktemp("relay")
    server = start_uvicorn(
        "lark_alert_middleware.relay:app",
        log_dir,
        relay_environment(lark, module_redis_prefix),
        ready_path="/healthz",
        log_level="info",
    )
    yield ServedRelay(server, lark)
    server.kill()
    lark.stop()


@pytest.fixture
def two_relays(tmp_path: Path, redis_prefix: str) -> Iterator[list[ServedRelay]]:
    """Two relay processes (uvicorn's workers share one socket, and the first to wake takes
    every connection, so two servers are how a test makes sure both get the payloads), on the
    shared Redis, posting to one receiver."""
    lark = LarkReceiver().start()
    environment = relay_environment(lark, redis_prefix)
    with concurrent.futures.ThreadPoolExecutor(2) as starting:
        servers = list(
            starting.map(
                lambda log_dir: start_uvicorn(
                    "lark_alert_middleware.relay:app", log_dir, environment, ready_path="/healthz"
                ),
                [tmp_path, tmp_path],  # each log file is named after its port
            )
        )
    yield [ServedRelay(server, lark) for server in servers]
    for server in servers:
        server.kill()
    lark.stop()
