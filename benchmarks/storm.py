"""An error storm through the app: what it costs the service, Redis and Lark.

    python benchmarks/storm.py [--requests 20000] [--kinds 100] [--trials 7]

20,000 failing requests over 100 fingerprints (statuses 400-499 on one route), 50 at a
time, driven through the ASGI interface of a FastAPI app: bare, and with the middleware
posting to a Lark-compatible receiver and deduplicating through a private redis-server
started for the run (so its command counters count only this). Each variant runs in a
fresh process; a trial runs both, in alternating order, and gives one ratio. A shared
machine's speed drifts by tens of percent from one second to the next, so the ratio
printed is the median of the trials', each of which is printed too.

The last trial's middleware process stays until every alert is delivered; its numbers are
the Redis commands per error (those the middleware sends, and those Redis executes
including inside its scripts), the posts made and the alerter's counters. Earlier trials
leave at once, their alerts undelivered; the rate budget they used stays in Redis, so that
together they keep inside Lark's limits.
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
import time
from typing import Any

CONCURRENCY = 50


def run_variant(variant: str, requests: int, kinds: int, deliver: bool) -> dict[str, Any]:
    """Runs inside the child process: drive the app, report numbers as JSON."""
    import logging

    from asgi_driver import receive, scope_for, send
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse
    from starlette.types import Message

    logging.getLogger("lark_alert_middleware").setLevel(logging.ERROR)
    redis_calls = count_redis_calls()
    app = FastAPI()

    @app.get("/fail/{status}")
    async def fail(status: int) -> PlainTextResponse:
        return PlainTextResponse("nope", status_code=status)

    if variant == "middleware":
        from lark_alert_middleware import LarkAlertMiddleware

        app.add_middleware(LarkAlertMiddleware)

    async def storm() -> float:
        statuses = [400 + index % kinds for index in range(requests)]
        queue = iter(statuses)

        async def worker() -> None:
            for status in queue:
                await app(scope_for(f"/fail/{status}"), receive, send)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started)

    async def served() -> float:
        # As under a server: lifespan start-up first, the storm, then shutdown.
        lifespan_inbox: asyncio.Queue[Message] = asyncio.Queue()
        lifespan_outbox: asyncio.Queue[Message] = asyncio.Queue()
        lifespan = asyncio.create_task(
            app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                lifespan_inbox.get,
                lifespan_outbox.put,
            )
        )
        await lifespan_inbox.put({"type": "lifespan.startup"})
        assert (await lifespan_outbox.get())["type"] == "lifespan.startup.complete"
        await asyncio.sleep(0.5)  # a service takes traffic some time after it starts
        rate = await storm()
        await lifespan_inbox.put({"type": "lifespan.shutdown"})
        await lifespan_outbox.get()
        await lifespan
        return rate

    requests_per_second = asyncio.run(served())
    result: dict[str, Any] = {"rps": requests_per_second}
    if variant == "middleware":
        layer: Any = app.middleware_stack
        while not isinstance(layer, LarkAlertMiddleware):
            layer = layer.app
        if layer.alerter is not None and deliver:
            assert layer.alerter.flush(120)
            result["stats"] = layer.alerter.stats().as_dict()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["redis_calls"] = redis_calls[0]
    return result


def count_redis_calls() -> list[int]:
    """Count the commands the middleware sends (a script call is one; a pipeline sends several)."""
    import redis.asyncio.client

    calls = [0]
    execute_command = redis.asyncio.client.Redis.execute_command
    pipeline_execute = redis.asyncio.client.Pipeline.execute

    async def counted_command(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += 1
        return await execute_command(self, *args, **options)

    async def counted_pipeline(self: Any, *args: Any, **options: Any) -> Any:
        calls[0] += len(self.command_stack)
        return await pipeline_execute(self, *args, **options)

    redis.asyncio.client.Redis.execute_command = counted_command  # type: ignore[method-assign]
    redis.asyncio.client.Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
    return calls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_commands(port: int) -> int:
    import redis

    client = redis.Redis(port=port)
    stats = client.info("commandstats")
    client.close()
    return sum(int(value["calls"]) for name, value in stats.items() if name not in ("cmdstat_info",))


def child(variant: str, arguments: argparse.Namespace, env: dict[str, str], deliver: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", variant]
    command += ["--requests", str(arguments.requests), "--kinds", str(arguments.kinds)]
    if deliver:
        command.append("--deliver")
    # Without delivery, shutdown leaves at once: the alerts of this process are not waited for.
    env = dict(env, LARK_ALERT_SHUTDOWN_TIMEOUT="120" if deliver else "0")
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def forget_errors(port: int) -> None:
    """Delete the dedup keys between trials, keeping the rate budget the trials share."""
    import redis

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
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--child", choices=["bare", "middleware"])
    parser.add_argument("--deliver", action="store_true")
    arguments = parser.parse_args()
    if arguments.child:
        result = run_variant(arguments.child, arguments.requests, arguments.kinds, arguments.deliver)
        print(json.dumps(result))
        return

    from lark_alert_middleware.lark import FREQUENCY_LIMITED
    from lark_alert_middleware.testing import LarkReceiver

    port = free_port()
    redis_server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        with LarkReceiver() as lark:
            env = {key: value for key, value in os.environ.items() if not key.startswith("LARK_")}
            env.update(LARK_WEBHOOK_URL=lark.url, REDIS_URL=f"redis://127.0.0.1:{port}/0")
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "middleware": []}
            for trial in range(arguments.trials):
                last = trial == arguments.trials - 1
                order = ["bare", "middleware"] if trial % 2 == 0 else ["middleware", "bare"]
                for variant in order:
                    if variant == "middleware" and last:
                        posts_before, commands_before = len(lark.requests), redis_commands(port)
                    results[variant].append(child(variant, arguments, env, deliver=last))
                    if variant == "middleware" and last:
                        posts = len(lark.requests) - posts_before
                        commands = redis_commands(port) - commands_before
                    forget_errors(port)
            refused = [r for r in lark.requests if r.answer_code == FREQUENCY_LIMITED]
    finally:
        redis_server.terminate()
        redis_server.wait()

    errors = arguments.requests
    ratios = [m["rps"] / b["rps"] for b, m in zip(results["bare"], results["middleware"], strict=True)]
    delivered = results["middleware"][-1]
    print(f"{errors:,} error requests over {arguments.kinds} fingerprints, {CONCURRENCY} at a time")
    print(
        f"  bare app             {statistics.median(r['rps'] for r in results['bare']):>10,.0f} requests/s"
        f"   peak RSS {statistics.median(r['peak_rss_mib'] for r in results['bare']):.1f} MiB"
    )
    print(
        f"  with the middleware  {statistics.median(r['rps'] for r in results['middleware']):>10,.0f} "
        f"requests/s   peak RSS {statistics.median(r['peak_rss_mib'] for r in results['middleware']):.1f} MiB"
    )
    print(f"  ratio                {statistics.median(ratios):>10.3f}   median of {arguments.trials} trials:")
    print(f"                       {', '.join(f'{ratio:.3f}' for ratio in ratios)}")
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
