"""An error storm through the app: what it costs the service, Redis and Lark.

    python benchmarks/storm.py [--requests 20000] [--kinds 100] [--trials 5]
                               [--topology server|cluster|sentinel]

20,000 failing requests over 100 fingerprints (statuses 400-499 on one route), 50 at a
time, driven through the ASGI interface of a FastAPI app: bare, and with the middleware
posting to a Lark-compatible receiver and deduplicating through a private redis-server
started for the run (so its command counters count only this).

A shared machine's speed drifts by tens of percent from one second to the next, more than
the middleware costs, so both apps serve their storm in the same process, taking turns in
chunks of 200 requests in the order AB BA AB ...: each sees the machine as the other does.
A chunk's cost is the CPU time of the thread serving it; the alerter thread's CPU time over
the whole storm (deciding, claiming in Redis, rendering, posting) is added to the
middleware's. The ratio is the bare app's cost over the middleware's, that is the
middleware's requests per CPU-second against the bare app's (a server's capacity in a
storm). Each trial is a fresh process; the figure printed is the median of the trials',
each of which is printed too.

The last trial waits until every alert is delivered; its numbers are the Redis commands
per error (those the middleware sends, and those Redis executes including inside its
scripts), the posts made and the alerter's counters. `--topology cluster` runs the same
storm against a Redis Cluster of 3 masters (no replicas, so that only the middleware's
commands are counted; summed over the masters), `--topology sentinel` against a master
found through 3 sentinels; the default is one server. Earlier trials leave at once, their
alerts undelivered; the rate budget they used stays in Redis, so that together they keep
inside Lark's limits. Peak RSS comes from two more processes, each serving one app alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

CONCURRENCY = 50
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK_REQUESTS = 200
VARIANTS = ("bare", "middleware")


def build_app(variant: str) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    app = FastAPI()

    @app.get("/fail/{status}")
    async def fail(status: int) -> PlainTextResponse:
        return PlainTextResponse("nope", status_code=status)

    if variant == "middleware":
        from lark_alert_middleware import LarkAlertMiddleware

        app.add_middleware(LarkAlertMiddleware)
    return app


class Served:
    """An app under lifespan, as a server runs it: start-up before traffic, shutdown after."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        assert (await self._outbox.get())["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        assert self._task is not None
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        await self._task

    async def storm(self, first: int, requests: int, kinds: int) -> None:
        """`requests` failing requests, `CONCURRENCY` at a time, from the `first`th of the storm."""
        from asgi_driver import receive, scope_for, send

        statuses = iter([400 + index % kinds for index in range(first, first + requests)])

        async def worker() -> None:
            for status in statuses:
                await self.app(scope_for(f"/fail/{status}"), receive, send)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


ALERTER_THREADS = ("lark-alert-middleware", "lark-alert-cards")  # the alerter loop, and its card maker


def alerter_cpu_seconds() -> float:
    """CPU time of the middleware's threads so far (the card maker's starts with the first card)."""
    threads = [thread for thread in threading.enumerate() if thread.name in ALERTER_THREADS]
    assert any(thread.name == ALERTER_THREADS[0] for thread in threads)
    return sum(time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0)) for thread in threads)


async def trial(requests: int, kinds: int, deliver: bool) -> dict[str, Any]:
    """Runs in a fresh process: both apps through the storm, in turns; CPU seconds of each."""
    served = {variant: Served(build_app(variant)) for variant in VARIANTS}
    for app in served.values():
        await app.start()
    await asyncio.sleep(0.5)  # a service takes traffic some time after it starts
    cpu_seconds = dict.fromkeys(VARIANTS, 0.0)
    alerter_before = alerter_cpu_seconds()
    for index in range(requests // CHUNK_REQUESTS):
        for variant in VARIANTS if index % 2 == 0 else VARIANTS[::-1]:
            started = time.thread_time()
            await served[variant].storm(index * CHUNK_REQUESTS, CHUNK_REQUESTS, kinds)
            cpu_seconds[variant] += time.thread_time() - started
    alerter = alerter_cpu_seconds() - alerter_before
    for app in served.values():
        await app.stop()
    result: dict[str, Any] = {"cpu_seconds": cpu_seconds, "alerter_cpu_seconds": alerter}
    if deliver:
        middleware = find_middleware(served["middleware"].app)
        assert middleware.alerter is not None and middleware.alerter.flush(120)
        result["stats"] = middleware.alerter.stats().as_dict()
    return result


async def alone(variant: str, requests: int, kinds: int) -> dict[str, Any]:
    """Runs in a fresh process: one app through the storm, for its peak memory."""
    app = Served(build_app(variant))
    await app.start()
    await app.storm(0, requests, kinds)
    await app.stop()
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def find_middleware(app: Any) -> Any:
    from lark_alert_middleware import LarkAlertMiddleware

    layer = app.middleware_stack
    while not isinstance(layer, LarkAlertMiddleware):
        layer = layer.app
    return layer


def count_redis_calls() -> list[int]:
    """Count the commands the middleware sends (a script call is one; a pipeline sends several)."""
    import redis.asyncio.client
    import redis.asyncio.cluster

    calls = [0]
    execute_command = redis.asyncio.client.Redis.execute_command
    pipeline_execute = redis.asyncio.client.Pipeline.execute
    # What a pipeline sends outside its stack (redis-py's SCRIPT EXISTS before registered scripts).
    pipeline_immediate = redis.asyncio.client.Pipeline.immediate_execute_command

    async def counted_command(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += 1
        return await execute_command(self, *args, **options)

    async def counted_pipeline(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += len(self.command_stack)
        return await pipeline_execute(self, *args, **options)

    async def counted_immediate(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += 1
        return await pipeline_immediate(self, *args, **options)

    redis.asyncio.client.Redis.execute_command = counted_command  # type: ignore[method-assign]
    redis.asyncio.client.Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
    redis.asyncio.client.Pipeline.immediate_execute_command = counted_immediate  # type: ignore[method-assign]

    # A cluster's client: a command (also one a pipeline sends again after MOVED), and a pipeline.
    cluster_command = redis.asyncio.cluster.RedisCluster.execute_command
    cluster_pipeline = redis.asyncio.cluster.ClusterPipeline.execute

    async def counted_cluster_command(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += 1
        return await cluster_command(self, *args, **options)

    async def counted_cluster_pipeline(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += len(self)
        return await cluster_pipeline(self, *args, **options)

    redis.asyncio.cluster.RedisCluster.execute_command = counted_cluster_command  # type: ignore[method-assign]
    redis.asyncio.cluster.ClusterPipeline.execute = counted_cluster_pipeline  # type: ignore[method-assign]
    return calls


def child_main(arguments: argparse.Namespace) -> None:
    import logging

    logging.getLogger("lark_alert_middleware").setLevel(logging.ERROR)
    if arguments.alone:
        result = asyncio.run(alone(arguments.alone, arguments.requests, arguments.kinds))
    else:
        redis_calls = count_redis_calls()
        result = asyncio.run(trial(arguments.requests, arguments.kinds, arguments.deliver))
        result["redis_calls"] = redis_calls[0]
    print(json.dumps(result))


def run_child(arguments: argparse.Namespace, env: dict[str, str], *options: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *options]
    command += ["--requests", str(arguments.requests), "--kinds", str(arguments.kinds)]
    # Without delivery, shutdown leaves at once: the alerts of this process are not waited for.
    env = dict(env, LARK_ALERT_SHUTDOWN_TIMEOUT="120" if "--deliver" in options else "0")
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    import redis

    command = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen([*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    client.close()
    return process


class Topology:
    """The Redis the storm runs against: its environment for the app, and the ports of its masters."""

    def __init__(self, kind: str, directory: str) -> None:
        self.kind = kind
        if kind == "server":
            port = free_port()
            self._server = start_redis(port)
            self.environment = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
            self.masters = [port]
            return
        sys.path.insert(0, str(REPO))
        from pathlib import Path

        from tests.topologies import start_cluster, start_sentinels

        if kind == "cluster":
            self._started = start_cluster(Path(directory), masters=3, replicas=0)
            self.environment = {"REDIS_URL": self._started.url, "LARK_ALERT_REDIS_CLUSTER": "true"}
            self.masters = [node.port for node in self._started.masters().values()]
        else:
            self._started = start_sentinels(Path(directory))
            self.environment = {"REDIS_URL": self._started.url}
            self.masters = [self._started.master().port]

    def stop(self) -> None:
        if self.kind == "server":
            self._server.terminate()
            self._server.wait()
        else:
            self._started.stop()


# What replicas and sentinels ask of a master (and this script's INFO): not the middleware's commands.
NOT_COUNTED = {
    f"cmdstat_{name}"
    for name in ("info", "ping", "replconf", "psync", "publish", "subscribe", "client|setname")
}


def redis_commands(ports: list[int]) -> int:
    import redis

    total = 0
    for port in ports:
        client = redis.Redis(port=port)
        stats = client.info("commandstats")
        client.close()
        total += sum(int(value["calls"]) for name, value in stats.items() if name not in NOT_COUNTED)
    return total


def forget_errors(ports: list[int]) -> None:
    """Delete the dedup keys between trials, keeping the rate budget the trials share."""
    import redis

    for port in ports:
        client = redis.Redis(port=port)
        for key in client.scan_iter():
            if b":rate:" not in key:
                client.delete(key)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kinds", type=int, default=100)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--topology", choices=("server", "cluster", "sentinel"), default="server")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--alone", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--deliver", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child_main(arguments)
        return
    arguments.requests -= arguments.requests % (2 * CHUNK_REQUESTS)

    from lark_alert_middleware._lark.webhook import FREQUENCY_LIMITED
    from lark_alert_middleware.testing import LarkReceiver

    directory = tempfile.mkdtemp(prefix="storm-redis-")
    topology = Topology(arguments.topology, directory)
    masters = topology.masters
    try:
        with LarkReceiver() as lark:
            env = {key: value for key, value in os.environ.items() if not key.startswith("LARK_")}
            env.update(LARK_WEBHOOK_URL=lark.url, **topology.environment)
            trials: list[dict[str, Any]] = []
            for number in range(1, arguments.trials + 1):
                print(f"  trial {number}/{arguments.trials}", file=sys.stderr, flush=True)
                last = number == arguments.trials
                posts_before, commands_before = len(lark.requests), redis_commands(masters)
                trials.append(run_child(arguments, env, *(["--deliver"] if last else [])))
                posts, commands = len(lark.requests) - posts_before, redis_commands(masters) - commands_before
                forget_errors(masters)
            memory = {variant: run_child(arguments, env, "--alone", variant) for variant in VARIANTS}
            forget_errors(masters)
            refused = [r for r in lark.requests if r.answer_code == FREQUENCY_LIMITED]
    finally:
        topology.stop()
        shutil.rmtree(directory, ignore_errors=True)

    errors = arguments.requests
    delivered = trials[-1]

    def cost(result: dict[str, Any], variant: str) -> float:
        own = float(result["cpu_seconds"][variant])
        return own + float(result["alerter_cpu_seconds"]) if variant == "middleware" else own

    ratios = [cost(result, "bare") / cost(result, "middleware") for result in trials]
    where = {"server": "one Redis server", "cluster": "a Redis Cluster of 3 masters", "sentinel": "sentinels"}
    print(f"{errors:,} error requests over {arguments.kinds} fingerprints, {CONCURRENCY} at a time")
    print(f"  Redis: {where[arguments.topology]}")
    for variant, label in (("bare", "bare app"), ("middleware", "with the middleware")):
        rate = errors / statistics.median(cost(result, variant) for result in trials)
        print(
            f"  {label:<21}{rate:>10,.0f} requests per CPU-second"
            f"   peak RSS {memory[variant]['peak_rss_mib']:.1f} MiB"
        )
    alerter_share = statistics.median(
        result["alerter_cpu_seconds"] / cost(result, "middleware") for result in trials
    )
    print(f"  ratio                {statistics.median(ratios):>10.3f}   median of {arguments.trials} trials:")
    print(f"                       {', '.join(f'{ratio:.3f}' for ratio in ratios)}")
    print(f"                       (the alerter thread: {alerter_share:.1%} of the middleware's CPU time)")
    print("  the last trial, delivering every alert:")
    print(
        f"  Redis commands/error {delivered['redis_calls'] / errors:>10.4f}   sent by the middleware "
        f"({delivered['redis_calls']}; a script call is one)"
    )
    print(f"                       {commands / errors:>10.4f}   executed by Redis, counting its scripts' own")
    print(f"  posts to Lark        {posts:>10}   refused for rate, in all trials: {len(refused)}")
    print(f"  alerter counters     {delivered['stats']}")


if __name__ == "__main__":
    main()
