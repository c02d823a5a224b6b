"""What REDIS_URL may name (a server, a cluster's nodes, sentinels), the keys' slots, the breaker's outages.

The topologies themselves are started by tests/integration/test_cluster.py and test_sentinel.py.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from lark_alert_middleware import ConfigurationError
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._lark.urls import safe_url
from lark_alert_middleware._pipeline.breaker import CircuitBreaker
from lark_alert_middleware._pipeline.dedup import dedup_key
from lark_alert_middleware._pipeline.redis_keys import claim_keys, keys_of_each_script, rate_key
from lark_alert_middleware._redis_url import SentinelURL, parse_sentinel_url, split_hosts
from lark_alert_middleware.cli import main

from .conftest import SHARED_REDIS_URL, free_port


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


# -- the keys' slots -------------------------------------------------------------------------------
prefixes = st.text(min_size=1, max_size=40).filter(lambda text: "{" not in text and "}" not in text)


@settings(max_examples=100, deadline=None)
@given(prefix=prefixes, fingerprint=st.text(max_size=200), webhook=st.text(min_size=1, max_size=200))
def test_every_key_one_script_touches_hashes_to_one_slot(prefix: str, fingerprint: str, webhook: str) -> None:
    error = dedup_key("orders", "production", fingerprint)
    for touched in (*keys_of_each_script(prefix, webhook).values(), claim_keys(prefix, error)):
        assert len({slot(key) for key in touched}) == 1, touched


def test_the_rate_budget_key_is_hash_tagged_by_its_webhook() -> None:
    key = rate_key("lark-alert:", "https://open.larksuite.com/open-apis/bot/v2/hook/secret-token")
    assert key.startswith("lark-alert:rate:{") and key.endswith("}")
    assert "secret-token" not in key
    assert slot(key) == slot(key[key.index("{") + 1 : -1])


def test_distinct_errors_spread_over_every_master_of_a_three_master_cluster() -> None:
    slots = [
        slot(claim_keys("lark-alert:", dedup_key("app", "prod", f"GET /{index} 500"))[0])
        for index in range(300)
    ]
    masters = [
        sum(low <= each <= high for each in slots) for low, high in ((0, 5460), (5461, 10922), (10923, 16383))
    ]
    assert min(masters) > 50, masters


def test_a_prefix_with_an_empty_hash_tag_splits_a_claim_across_slots() -> None:
    # Why a cluster refuses braces in the prefix: `{}` makes Redis hash the whole key.
    keys = claim_keys("app{}:", "0" * 32)
    assert len({slot(key) for key in keys}) == len(keys)


# -- sentinel URLs ---------------------------------------------------------------------------------
def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    url = "redis+sentinel://:s%40cret@sentinel-1:26380,sentinel-2,[::1]:5000/my%20master/2"
    assert parse_sentinel_url(url) == SentinelURL(
        sentinels=(("sentinel-1", 26380), ("sentinel-2", 26379), ("::1", 5000)),
        service_name="my master",
        db=2,
        username=None,
        password="s@cret",
        sentinel_password=None,
    )


def test_a_sentinel_url_may_carry_a_user_and_the_sentinels_own_password() -> None:
    address = parse_sentinel_url("redis+sentinel://app:pw@10.0.0.1:26379/cache?sentinel_password=sp")
    assert (address.username, address.password, address.sentinel_password) == ("app", "pw", "sp")
    assert address.db == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://:hunter2@sentinel-1:26379", "names no service"),
        ("redis+sentinel://:hunter2@sentinel-1:26379/", "names no service"),
        ("redis+sentinel://:hunter2@sentinel-1:26379/mymaster/zero", "must be a number"),
        ("redis+sentinel://:hunter2@sentinel-1:26379/mymaster/0/1", "must be a number"),
        ("redis+sentinel://:hunter2@sentinel-1:port/mymaster", "the port must be a number"),
        ("redis+sentinel://:hunter2@sentinel-1:99999/mymaster", "the port must be a number"),
        ("redis+sentinel://:hunter2@sentinel-1,,sentinel-2/mymaster", "lists an empty host"),
        ("redis+sentinel://:hunter2@sentinel-1/mymaster?ssl=true", "unknown option 'ssl'"),
    ],
)
def test_a_wrong_sentinel_url_is_refused_with_the_reason_and_without_the_password(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert "REDIS_URL (redis_url=): " in str(error.value) and message in str(error.value)
    assert "hunter2" not in str(error.value)


@settings(max_examples=300, deadline=None)
@given(
    rest=st.text(max_size=80),
    password=st.text(min_size=6, max_size=20, alphabet="abcdefghijklmnopqrstuvwxyz"),
)
def test_reading_any_sentinel_url_either_works_or_says_why_without_the_password(
    rest: str, password: str
) -> None:
    url = f"redis+sentinel://:{password}@{rest}"
    try:
        parse_sentinel_url(url)
    except ValueError as error:
        assert password not in str(error)


def test_a_sentinel_url_is_shown_with_its_passwords_masked() -> None:
    url = "redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster/0?sentinel_password=swordfish"
    assert safe_url(url) == "redis+sentinel://:***@s1:26379,s2:26379/mymaster/0?sentinel_password=***"


# -- cluster URLs and settings ---------------------------------------------------------------------
def test_a_cluster_url_may_list_several_nodes_and_keeps_its_options() -> None:
    first, nodes = split_hosts("rediss://app:p%40ss@node-1:7000,node-2,[::1]:7002/0?ssl_cert_reqs=none")
    assert first == "rediss://app:p%40ss@node-1:7000/0?ssl_cert_reqs=none"
    assert nodes == [("node-1", 7000), ("node-2", 6379), ("::1", 7002)]


def test_the_cluster_setting_reads_a_listed_node_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@node-1:7000,node-2:7001")
    monkeypatch.setenv("LARK_ALERT_REDIS_CLUSTER", "true")
    assert load_settings().redis_cluster


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "needs REDIS_URL"),
        (
            {"REDIS_URL": "redis+sentinel://s1:26379/mymaster"},
            "needs REDIS_URL to name a node of the cluster",
        ),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "needs REDIS_URL to name a node of the cluster"),
        ({"REDIS_URL": "redis://:hunter2@node-1:7000/1"}, "has database 0 only"),
        ({"REDIS_URL": "redis://node-1:7000", "LARK_ALERT_REDIS_PREFIX": "{app}:"}, "holds { or }"),
    ],
)
def test_a_cluster_setting_that_cannot_work_is_refused_with_the_reason(
    environment: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LARK_ALERT_REDIS_CLUSTER", "true")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert "LARK_ALERT_REDIS_CLUSTER (redis_cluster=): " in str(error.value)
    assert message in str(error.value) and "hunter2" not in str(error.value)


def test_several_hosts_without_the_cluster_setting_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@node-1:7000,node-2:7001/0")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert "LARK_ALERT_REDIS_CLUSTER (redis_cluster=): is not set, but REDIS_URL lists several hosts" in str(
        error.value
    )
    assert "hunter2" not in str(error.value)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["redis://", "rediss://", "redis+sentinel://", "unix://", "REDIS+SENTINEL://"]),
    rest=st.text(max_size=60),
    cluster=st.booleans(),
)
def test_any_redis_url_is_read_or_refused_by_name_never_quoting_its_password(
    scheme: str, rest: str, cluster: bool
) -> None:
    password = "hunter2-not-shown"
    try:
        load_settings(redis_url=f"{scheme}:{password}@{rest}", redis_cluster=cluster)
    except ConfigurationError as error:
        assert "REDIS_URL (redis_url=)" in str(error) or "LARK_ALERT_REDIS_CLUSTER" in str(error)
        assert password not in str(error)


def test_a_prefix_with_braces_still_works_on_one_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("LARK_ALERT_REDIS_PREFIX", "{app}:")
    assert load_settings().redis_key_prefix == "{app}:"


# -- lark-alert check on one server ----------------------------------------------------------------
def test_check_calls_one_server_a_server_and_its_keys_ready_for_a_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", SHARED_REDIS_URL)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"{SHARED_REDIS_URL} (a server; answered PING: dedup is fleet-wide)" in out
    assert (
        "Redis key slots        consistent: the keys of each script share one slot (ready for a cluster)"
        in out
    )


def test_check_warns_that_a_prefix_with_an_empty_hash_tag_would_not_work_on_a_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", SHARED_REDIS_URL)
    monkeypatch.setenv("LARK_ALERT_REDIS_PREFIX", "app{}:")
    assert main(["check"]) == 0  # one server does not mind
    assert (
        "the keys of the dedup claim, repeat count, daily summary fall in different slots: "
        "fine on one server, refused by a cluster" in (capsys.readouterr().out)
    )


def test_check_says_when_the_cluster_setting_meets_a_server_that_is_no_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", SHARED_REDIS_URL)
    monkeypatch.setenv("LARK_ALERT_REDIS_CLUSTER", "true")
    assert main(["check"]) == 1
    assert "LARK_ALERT_REDIS_CLUSTER is set, but REDIS_URL's server is not in cluster mode" in (
        capsys.readouterr().err
    )


def test_check_reports_sentinels_that_do_not_answer_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis+sentinel://:{quote('hunter2')}@127.0.0.1:{free_port()}/mymaster")
    assert main(["check"]) == 1
    captured = capsys.readouterr()
    assert "did not answer PING (MasterNotFoundError" in captured.err
    assert "hunter2" not in captured.out + captured.err


# -- the breaker: an outage ends once Redis has answered for a while -------------------------------
def test_an_outage_that_answers_for_some_calls_and_not_others_is_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As a cluster failing over does: keys on the other masters answer, the dead master's do not."""
    answers = iter([False, True, False, True, True, *[True] * 1000])

    async def from_redis() -> str:
        if not next(answers):
            raise RedisConnectionError("the master of this slot is down")
        return "redis"

    async def from_process() -> str:
        return "process"

    async def calls() -> list[str]:
        breaker = CircuitBreaker(timeout=1.0, pause=0.05, max_pause=0.05)
        got = []
        while len(got) < 5 or breaker.in_outage:
            got.append(await breaker.call(from_redis, from_process))
            await asyncio.sleep(0.01)
        return got

    with caplog.at_level(logging.WARNING, logger="lark_alert_middleware"):
        got = asyncio.run(calls())
    assert got[0] == "process" and got[-1] == "redis"
    assert [record.getMessage().split(";")[0] for record in caplog.records] == [
        "lark_alert_middleware: Redis is unreachable (ConnectionError)",
        "lark_alert_middleware: Redis is reachable again",
    ]
