"""Redis Cluster: two uvicorn workers share a 3-master, 3-replica cluster of the module's own.

The tests run in this order on one cluster: the last kills a master.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from lark_alert_middleware._pipeline.breaker import CircuitBreaker
from lark_alert_middleware._pipeline.dedup import (
    FallbackDedupStore,
    InProcessDedupStore,
    RedisDedupStore,
    dedup_key,
    fleet_of,
)
from lark_alert_middleware._pipeline.redis_client import open_redis
from lark_alert_middleware._pipeline.redis_keys import claim_keys
from lark_alert_middleware._pipeline.steward import RedisSteward
from lark_alert_middleware._records import NEW, ClaimRequest, RepeatCount, Thresholds, Tracking
from lark_alert_middleware.cli import main
from lark_alert_middleware.testing import LarkReceiver

from ..conftest import free_port
from ..topologies import ClusterTopology, RedisProcess
from .conftest import Server
from .fleet import a_failover_mid_storm_costs_nothing, each_error_is_reported_once, key_prefix

pytestmark = [pytest.mark.integration, pytest.mark.topology]

Serve = Callable[..., Server]


def on_cluster(url: str) -> dict[str, str]:
    return {"REDIS_URL": url, "LARK_ALERT_REDIS_CLUSTER": "true"}


def test_check_finds_a_cluster_of_three_masters_with_consistent_slots(
    redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in on_cluster(redis_cluster.url).items():
        monkeypatch.setenv(name, value)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"{redis_cluster.url} (a cluster with 3 masters; answered PING: dedup is fleet-wide)" in out
    assert "consistent: the keys of each script share one slot (as the cluster computes them)" in out


def test_check_says_to_set_the_cluster_flag_for_a_cluster_node(
    redis_cluster: ClusterTopology, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    assert main(["check"]) == 1
    assert "set LARK_ALERT_REDIS_CLUSTER=true" in capsys.readouterr().err


def test_a_plain_client_meeting_a_cluster_warns_once_with_the_fix(
    redis_cluster: ClusterTopology, caplog: pytest.LogCaptureFixture
) -> None:
    async def claim_everywhere() -> None:
        opened = open_redis(redis_cluster.url, cluster=False, timeout=1.0)
        store = FallbackDedupStore(
            RedisDedupStore(opened.client, key_prefix()), InProcessDedupStore(100), CircuitBreaker(1.0)
        )
        requests = [ClaimRequest(dedup_key("app", "test", str(index)), 60, 0) for index in range(20)]
        claims = await store.claim(requests, time.time())  # most keys live on other nodes: MOVED
        assert all(claim.first for claim in claims)  # decided in process instead
        await opened.close()

    with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"):
        asyncio.run(claim_everywhere())
    [warning] = [record.getMessage() for record in caplog.records]
    assert "REDIS_URL names a node of a Redis Cluster; set LARK_ALERT_REDIS_CLUSTER=true" in warning


def test_a_cluster_is_found_through_any_listed_node_while_the_first_is_down(
    redis_cluster: ClusterTopology, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"127.0.0.1:{free_port()}"
    url = redis_cluster.every_node_url.replace("redis://", f"redis://{down},")

    async def claim_twice() -> list[bool]:
        opened = open_redis(url, cluster=True, timeout=1.0)
        store = RedisDedupStore(opened.client, key_prefix())
        request = [ClaimRequest(dedup_key("app", "test", "error"), 60, 0)]
        claims = [(await store.claim(request, time.time()))[0].first for _ in range(2)]
        await opened.close()
        return claims

    assert asyncio.run(claim_twice()) == [True, False]


def test_two_workers_report_each_of_hundreds_of_errors_once(
    serve: Serve, lark_receiver: LarkReceiver, redis_cluster: ClusterTopology
) -> None:
    each_error_is_reported_once(serve, lark_receiver, **on_cluster(redis_cluster.url))


def test_escalation_recovery_and_the_summary_run_on_a_cluster(redis_cluster: ClusterTopology) -> None:
    prefix = key_prefix()
    due = time.time() + 60
    tracking = Tracking(fleet_of("app", "test"), recovery_after=1, summary_due=due)
    requests = [
        ClaimRequest(dedup_key("app", "test", str(index)), 60, 0, f"GET /{index} 500") for index in range(30)
    ]
    watched = (Thresholds(0, (10,)),)

    async def scenario() -> None:
        opened = open_redis(redis_cluster.url, cluster=True, timeout=1.0)
        store, steward = RedisDedupStore(opened.client, prefix), RedisSteward(opened.client, prefix)
        now = time.time()
        claims = await store.claim(requests, now, tracking)  # the fleet's keys alongside, on their master
        assert [claim.first for claim in claims] == [True] * 30
        assert all(claim.history is not None and claim.history.novelty == NEW for claim in claims)
        counts = [RepeatCount(request.key, 9, watched) for request in requests]
        assert len(await store.add_repeats(counts, now + 1, tracking)) == 30
        assert await steward.lead(tracking.fleet, 5.0)
        await steward.watch(tracking.fleet, due, now)
        assert len(await steward.recovered(tracking.fleet, 1, now + 3)) == 30
        summary = await steward.summary(tracking.fleet, (due - 86400, due), now)
        assert summary is not None and (summary.total, summary.kinds, summary.new_kinds) == (300, 30, 30)
        await opened.close()

    asyncio.run(scenario())


def test_claims_follow_a_slot_moved_to_another_master_without_an_outage(
    redis_cluster: ClusterTopology,
) -> None:
    prefix = key_prefix()
    requests = [ClaimRequest(dedup_key("app", "test", str(index)), 60, 0) for index in range(30)]
    moved = claim_keys(prefix, requests[0].key)[0]

    async def scenario() -> None:
        opened = open_redis(redis_cluster.url, cluster=True, timeout=1.0)
        store = FallbackDedupStore(
            RedisDedupStore(opened.client, prefix), InProcessDedupStore(100), CircuitBreaker(1.0)
        )
        assert [claim.first for claim in await store.claim(requests, time.time())] == [True] * 30
        source = redis_cluster.master_of(moved)
        with migrating_slot(redis_cluster, moved, source) as target:
            pass
        assert redis_cluster.master_of(moved).port == target.port
        claims = await store.claim(requests, time.time())  # MOVED: the client learns the new master
        assert [claim.first for claim in claims] == [False] * 30
        assert store.breaker.outages == 0
        await opened.close()

    asyncio.run(scenario())


def test_claims_of_a_slot_being_resharded_are_decided_in_process_and_the_rest_in_redis(
    redis_cluster: ClusterTopology, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = key_prefix()
    requests = [ClaimRequest(dedup_key("app", "test", str(index)), 60, 0) for index in range(30)]
    moving = claim_keys(prefix, requests[0].key)[0]

    async def scenario() -> None:
        opened = open_redis(redis_cluster.url, cluster=True, timeout=1.0)
        store = FallbackDedupStore(
            RedisDedupStore(opened.client, prefix), InProcessDedupStore(100), CircuitBreaker(5.0)
        )
        assert [claim.first for claim in await store.claim(requests, time.time())] == [True] * 30
        with migrating_slot(redis_cluster, moving, redis_cluster.master_of(moving)):
            # The error's keys are split between the masters (TRYAGAIN): only its claim is decided here.
            claims = await store.claim(requests, time.time())
            assert [claim.first for claim in claims] == [True] + [False] * 29
        claims = await store.claim(requests, time.time())
        assert [claim.first for claim in claims] == [False] * 30  # the slot has moved: Redis decides all
        assert store.breaker.outages == 0
        await opened.close()

    with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"):
        asyncio.run(scenario())
    assert caplog.records == []  # resharding is no outage


@contextmanager
def migrating_slot(cluster: ClusterTopology, key: str, source: RedisProcess) -> Iterator[RedisProcess]:
    """Reshard `key`'s slot from `source` to another master, as redis-cli does: the slot is MIGRATING
    and IMPORTING while its keys move (here: half of them, and the window last), then owned by the
    target. Yields the target."""
    masters = {node.port: node for node in cluster.masters().values()}
    target = next(node for port, node in masters.items() if port != source.port)
    clients = {port: node.client() for port, node in masters.items()}
    source_client, target_client = clients[source.port], clients[target.port]
    slot = int(source_client.execute_command("CLUSTER", "KEYSLOT", key))
    source_id, target_id = (
        client.execute_command("CLUSTER", "MYID") for client in (source_client, target_client)
    )
    try:
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        keys = source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        kept = [name for name in keys if name.endswith(b":window")]
        moved = [name for name in keys if name not in kept]
        source_client.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *moved)
        yield target
        if kept:
            source_client.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *kept)
        for client in clients.values():
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    finally:
        for client in clients.values():
            client.close()


def test_killing_the_master_of_the_dedup_keys_mid_storm_costs_no_request(
    serve: Serve, lark_receiver: LarkReceiver, redis_cluster: ClusterTopology
) -> None:
    def kill_master(prefix: str) -> None:
        windows = Counter(
            redis_cluster.master_of(key).port
            for key in all_keys(redis_cluster, prefix)
            if key.endswith(":window")
        )
        port = windows.most_common(1)[0][0]
        next(node for node in redis_cluster.processes if node.port == port).kill()

    # Every node listed: a worker that first connects after the kill may not reach the first node.
    a_failover_mid_storm_costs_nothing(
        serve,
        lark_receiver,
        kill_master,
        redis_cluster.is_healthy,
        **on_cluster(redis_cluster.every_node_url),
    )


def all_keys(cluster: ClusterTopology, prefix: str) -> list[str]:
    keys = []
    for node in cluster.masters().values():
        client = node.client()
        keys += [key.decode() for key in client.scan_iter(match=f"{prefix}*")]
        client.close()
    return keys
