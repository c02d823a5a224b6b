"""docker-compose.yml and the Dockerfile: everything they name exists and every port and URL agrees.

There is no Docker engine in CI, so this is what `docker compose config` would catch, and more.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any
from urllib.parse import urlsplit

import pytest

from lark_alert_middleware._config import iter_variables, load_settings
from lark_alert_middleware._sources.relay.app import relay_settings
from lark_alert_middleware.testing import HOOK_PATH

from .compose import REPO, environment, load_compose, option, variables_in

SERVICES = load_compose()["services"]
APPS = ("app-1", "app-2")
LISTENING = ("lark", *APPS, "relay")


def listen_port(name: str) -> int:
    return int(option(SERVICES[name]["command"], "--port"))


def published(name: str) -> list[tuple[int, int]]:
    pairs = []
    for mapping in SERVICES[name].get("ports", []):
        host, container = str(mapping).split(":")
        pairs.append((int(host), int(container)))
    return pairs


def test_the_fleet_is_redis_7_a_shared_inbox_two_replicas_and_traffic() -> None:
    assert {name for name, service in SERVICES.items() if "profiles" not in service} == {
        "redis",
        "lark",
        *APPS,
        "traffic",
        "relay",
    }
    assert str(SERVICES["redis"]["image"]).startswith("redis:7")
    assert SERVICES["app-1"]["command"] == SERVICES["app-2"]["command"]
    assert environment(SERVICES["app-1"]) == environment(SERVICES["app-2"])


@pytest.mark.parametrize("name", [name for name in SERVICES if "build" in SERVICES[name]])
def test_every_build_context_and_dockerfile_exists(name: str) -> None:
    build: Any = SERVICES[name]["build"]
    context = REPO / (build if isinstance(build, str) else build["context"])
    dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    assert context.is_dir() and dockerfile.is_file()


def test_every_file_the_dockerfile_copies_exists() -> None:
    copies = [
        line.split()[1:-1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY")
    ]
    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), source


@pytest.mark.parametrize("name", ["lark", *APPS, "traffic", "relay"])
def test_every_command_runs_a_module_that_exists(name: str) -> None:
    command = SERVICES[name]["command"]
    if command[0] == "uvicorn":
        module, attribute = command[1].split(":")
        assert hasattr(importlib.import_module(module), attribute)
    else:
        assert command[:2] == ["python", "-m"]
        assert importlib.util.find_spec(command[2]) is not None


def test_depends_on_names_services_and_waits_only_on_healthchecks() -> None:
    for service in SERVICES.values():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency


@pytest.mark.parametrize("name", LISTENING)
def test_healthchecks_and_published_ports_use_the_port_the_service_listens_on(name: str) -> None:
    port = listen_port(name)
    assert f"127.0.0.1:{port}/healthz" in " ".join(SERVICES[name]["healthcheck"]["test"])
    assert [container for _, container in published(name)] == [port]


def test_no_two_services_publish_the_same_host_port() -> None:
    hosts = [host for name in SERVICES for host, _ in published(name)]
    assert len(hosts) == len(set(hosts))


def test_the_replicas_post_to_the_inbox_service_and_share_redis() -> None:
    lark = SERVICES["lark"]["command"]
    settings = environment(SERVICES["app-1"])
    webhook = urlsplit(settings["LARK_WEBHOOK_URL"])
    assert (webhook.hostname, webhook.port) == ("lark", int(option(lark, "--webhook-port")))
    assert webhook.path == HOOK_PATH + option(lark, "--token")
    redis_url = urlsplit(settings["REDIS_URL"])
    assert (redis_url.hostname, redis_url.port or 6379) == ("redis", 6379)
    inbox = urlsplit(settings["DEMO_INBOX_URL"])
    assert inbox.port == published("lark")[0][0] and inbox.path == "/_alerts"


def test_the_replicas_configuration_is_valid_as_compose_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment(SERVICES["app-1"]).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # the webhook's host, `lark`, is neither Lark's nor loopback
    assert settings.webhook_url is not None and settings.allowed_webhook_hosts == ("lark",)


def test_traffic_goes_to_every_replica_on_its_port() -> None:
    targets = [urlsplit(url) for url in SERVICES["traffic"]["command"][3:]]
    assert [(target.hostname, target.port) for target in targets] == [
        (name, listen_port(name)) for name in APPS
    ]


def test_variables_passed_through_are_ones_the_middleware_reads() -> None:
    known = {variable for variable, _ in iter_variables()}
    passed = [
        name for value in SERVICES["app-1"]["environment"].values() for name in variables_in(str(value))
    ]
    assert "LARK_WEBHOOK_URL" in passed and "LARK_WEBHOOK_SECRET" in passed
    assert set(passed) <= known


CLUSTER_NODES = [name for name, service in SERVICES.items() if name.startswith("redis-node-")]
CLUSTER_APPS = ("app-cluster-1", "app-cluster-2")


def test_the_cluster_profile_adds_six_cluster_nodes_two_replicas_and_their_traffic() -> None:
    in_profile = {name for name, service in SERVICES.items() if service.get("profiles") == ["cluster"]}
    assert in_profile == {*CLUSTER_NODES, "redis-cluster-init", *CLUSTER_APPS, "traffic-cluster"}
    assert len(CLUSTER_NODES) == 6
    for name in CLUSTER_NODES:
        assert str(SERVICES[name]["image"]).startswith("redis:7")
        assert option(SERVICES[name]["command"], "--cluster-enabled") == "yes"


def test_the_cluster_is_created_from_every_node_with_a_replica_each() -> None:
    init = SERVICES["redis-cluster-init"]
    script = " ".join(init["command"])
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    assert all(name in script for name in CLUSTER_NODES)
    assert set(init["depends_on"]) == set(CLUSTER_NODES)


def test_the_cluster_replicas_reach_the_cluster_and_their_configuration_is_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert environment(SERVICES[CLUSTER_APPS[0]]) == environment(SERVICES[CLUSTER_APPS[1]])
    settings = environment(SERVICES[CLUSTER_APPS[0]])
    nodes = urlsplit(settings["REDIS_URL"]).netloc.split(",")
    assert nodes and {node.split(":")[0] for node in nodes} <= set(CLUSTER_NODES)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    assert load_settings().redis_cluster
    targets = [urlsplit(url).hostname for url in SERVICES["traffic-cluster"]["command"][3:]]
    assert targets == list(CLUSTER_APPS)


def test_the_relay_posts_to_the_inbox_shares_redis_and_starts_as_compose_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = environment(SERVICES["relay"])
    apps = environment(SERVICES["app-1"])
    for name in ("LARK_WEBHOOK_URL", "REDIS_URL", "LARK_ALERT_ALLOWED_WEBHOOK_HOSTS"):
        assert settings[name] == apps[name]
    assert SERVICES["relay"]["command"][2:4] == ["lark_alert_middleware", "relay"]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    relay_settings(load_settings())  # a token is set: the relay starts
