"""Redis topologies of the tests' own, on loopback: a cluster of masters and replicas, and a master
with a replica watched by sentinels. Every process is started here and stopped by its PID.

Also used by `benchmarks/storm.py --topology`.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .conftest import wait_until

SERVICE_NAME = "lark-alert-test"
CLUSTER_BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000, for its peers


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Ports below 55000 whose bus port (port + 10000) is free as well, for cluster nodes."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20_000, 45_000)
        if port not in ports and _bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET):
            ports.append(port)
    return ports


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) started by a test."""

    port: int
    process: subprocess.Popen[bytes]

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def answers(self) -> bool:
        client = self.client(0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _start(directory: Path, port: int, *options: str, sentinel: bool = False) -> RedisProcess:
    executable = shutil.which("redis-server") or "redis-server"
    command = [executable]
    if sentinel:
        config = directory / f"sentinel-{port}.conf"  # sentinels rewrite their file: one each
        config.write_text("\n".join(options) + "\n")
        command += [str(config), "--sentinel"]
        options = ()
    command += ["--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "no", "--dir", str(directory)]
    if not sentinel:
        # A replica's first sync at once, not after 5 s of waiting for other replicas.
        command += ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
    log = directory / f"redis-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*command, *options], stdout=output, stderr=subprocess.STDOUT)
    return RedisProcess(port, process)


@dataclass
class Topology:
    """Processes started together and stopped together."""

    directory: Path
    processes: list[RedisProcess] = field(default_factory=list)

    def start(self, port: int, *options: str, sentinel: bool = False) -> RedisProcess:
        started = _start(self.directory, port, *options, sentinel=sentinel)
        self.processes.append(started)
        return started

    def wait_for_all(self) -> None:
        for node in self.processes:
            wait_until(lambda node=node: node.answers() or not node.alive, timeout=15, what="redis-server")
            if not node.alive:
                raise AssertionError(f"redis-server on {node.port} exited")

    def stop(self) -> None:
        for node in self.processes:
            node.kill()


@dataclass
class ClusterTopology(Topology):
    """A Redis Cluster: masters, each with its replicas."""

    @property
    def url(self) -> str:
        """One node's URL: enough while that node is up."""
        return f"redis://127.0.0.1:{self.processes[0].port}/0"

    @property
    def every_node_url(self) -> str:
        """Every node listed: a client starting while some are down finds the cluster through another."""
        return "redis://" + ",".join(f"127.0.0.1:{node.port}" for node in self.processes) + "/0"

    def _live_client(self) -> redis.Redis:
        node = next(node for node in self.processes if node.alive)
        return node.client()

    def masters(self) -> dict[int, RedisProcess]:
        """The masters as the cluster sees them now (first slot -> node), live ones only."""
        by_port = {node.port: node for node in self.processes if node.alive}
        client = self._live_client()
        try:
            slots = client.execute_command("CLUSTER", "SLOTS")
        finally:
            client.close()
        return {int(entry[0]): by_port[int(entry[2][1])] for entry in slots if int(entry[2][1]) in by_port}

    def master_of(self, key: str) -> RedisProcess:
        """The live node serving `key`'s slot now."""
        client = self._live_client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            slots = client.execute_command("CLUSTER", "SLOTS")
        finally:
            client.close()
        by_port = {node.port: node for node in self.processes}
        for first, last, master, *_ in slots:
            if int(first) <= slot <= int(last):
                return by_port[int(master[1])]
        raise AssertionError(f"no node serves slot {slot}")

    def replicas(self) -> list[RedisProcess]:
        masters = {node.port for node in self.masters().values()}
        return [node for node in self.processes if node.alive and node.port not in masters]

    def is_healthy(self) -> bool:
        """Every live node says the cluster is ok and serves every slot with a live master."""
        for node in self.processes:
            if not node.alive:
                continue
            client = node.client(0.5)
            try:
                info = client.execute_command("CLUSTER", "INFO")
                slots = client.execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                return False
            finally:
                client.close()
            text = info.decode() if isinstance(info, bytes) else str(info)
            live = {other.port for other in self.processes if other.alive}
            if "cluster_state:ok" not in text or any(int(entry[2][1]) not in live for entry in slots):
                return False
        return True


def start_cluster(
    directory: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000
) -> ClusterTopology:
    """A cluster of `masters` masters with `replicas` replicas each, once every node agrees it is ok."""
    topology = ClusterTopology(directory)
    try:
        for port in _free_ports(masters * (1 + replicas)):
            topology.start(
                port,
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-replica-validity-factor", "0",  # a replica may always take over
            )  # fmt: skip
        topology.wait_for_all()
        addresses = [f"127.0.0.1:{node.port}" for node in topology.processes]
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create", *addresses,
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(topology.is_healthy, timeout=30, interval=0.1, what="the cluster to be ok on every node")
        for replica in topology.replicas():
            wait_until(lambda replica=replica: _in_sync(replica), timeout=30, interval=0.05, what="replicas")
    except BaseException:
        topology.stop()
        raise
    return topology


@dataclass
class SentinelTopology(Topology):
    """A master and its replica, watched by sentinels under `SERVICE_NAME`."""

    sentinels: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        addresses = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{addresses}/{SERVICE_NAME}/0"

    def master(self) -> RedisProcess:
        """The master as a live sentinel names it now."""
        by_port = {node.port: node for node in self.processes}
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            client = sentinel.client()
            try:
                _, port = client.sentinel_get_master_addr_by_name(SERVICE_NAME)
            except redis.RedisError:
                continue
            finally:
                client.close()
            return by_port[int(port)]
        raise AssertionError("no sentinel answers")

    def is_serving(self) -> bool:
        """The master the sentinels name is alive, a master, and takes writes."""
        try:
            master = self.master()
        except AssertionError:
            return False
        if not master.alive:
            return False
        client = master.client(0.5)
        try:
            return client.execute_command("ROLE")[0] in (b"master", "master") and bool(client.set("probe", 1))
        except redis.RedisError:
            return False
        finally:
            client.close()


def start_sentinels(directory: Path, sentinels: int = 3, down_after_ms: int = 1000) -> SentinelTopology:
    """A master, one replica and `sentinels` sentinels (quorum 2), once the replica is in sync."""
    topology = SentinelTopology(directory)
    try:
        master_port, replica_port, *sentinel_ports = _free_ports(2 + sentinels)
        master = topology.start(master_port)
        replica = topology.start(replica_port, "--replicaof", "127.0.0.1", str(master_port))
        topology.wait_for_all()
        # Each sentinel is told of the replica and of the others, instead of finding them out
        # (from INFO every 10 s and hello messages every 2 s).
        ids = {port: f"{port:040x}" for port in sentinel_ports}
        for port in sentinel_ports:
            others = [f"sentinel known-sentinel {SERVICE_NAME} 127.0.0.1 {other} {ids[other]}"
                      for other in sentinel_ports if other != port]  # fmt: skip
            topology.sentinels.append(
                topology.start(
                    port,
                    f"sentinel myid {ids[port]}",
                    f"sentinel monitor {SERVICE_NAME} 127.0.0.1 {master.port} 2",
                    f"sentinel down-after-milliseconds {SERVICE_NAME} {down_after_ms}",
                    f"sentinel failover-timeout {SERVICE_NAME} {down_after_ms * 3}",
                    f"sentinel parallel-syncs {SERVICE_NAME} 1",
                    f"sentinel known-replica {SERVICE_NAME} 127.0.0.1 {replica_port}",
                    *others,
                    sentinel=True,
                )
            )
        topology.wait_for_all()
        wait_until(lambda: _in_sync(replica), timeout=30, interval=0.1, what="the replica to sync")
        wait_until(lambda: _sentinels_know_the_replica(topology), timeout=30, interval=0.1, what="sentinels")
    except BaseException:
        topology.stop()
        raise
    return topology


def _in_sync(replica: RedisProcess) -> bool:
    client = replica.client()
    try:
        return client.info("replication").get("master_link_status") == "up"
    finally:
        client.close()


def _sentinels_know_the_replica(topology: SentinelTopology) -> bool:
    """Each sentinel sees the replica and two other sentinels: a failover can be agreed on."""
    for sentinel in topology.sentinels:
        client = sentinel.client()
        try:
            state = client.sentinel_master(SERVICE_NAME)
        finally:
            client.close()
        if state["num-slaves"] < 1 or state["num-other-sentinels"] < len(topology.sentinels) - 1:
            return False
    return True
