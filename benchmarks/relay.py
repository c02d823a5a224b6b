"""The relay's throughput and answer time, beside a bare uvicorn app answering the same POST.

    python benchmarks/relay.py [--rounds 10] [--seconds 2] [--connections 8] [--rate 2000] [--fresh-bodies]

Three servers, one uvicorn worker each (h11, access log off), on CPU 0 when taskset exists:
the relay (`lark_alert_middleware.relay:app`, state and dedup in the local Redis when it
answers, posting to a Lark-compatible receiver), a bare ASGI app that reads the body and
answers 202, and a second bare app: the A/A control, which shows what the method cannot tell
apart. A load generator on CPU 1 POSTs three-alert Alertmanager payloads on `--connections`
keep-alive connections, cycling over 50 distinct alerts: after the first cycle (whose cards are
posted before the rounds start) every alert is known, the steady state of a re-sending
Alertmanager; its bodies repeat too, as Alertmanager's do, unless `--fresh-bodies` makes each
one new (then every payload is parsed: the relay's worst case for a notification with nothing
new). Each round loads each server twice, in an order that rotates: as fast as it
answers (its payloads/s, and the CPU time its process used per payload, from /proc), then at
`--rate` payloads/s in all, each connection sending on a schedule (its p99 answer time).
The table gives each server's best round for payloads/s (interference only slows a round
down), its least CPU per payload (the cost of a payload whoever else wants the CPU), its
median p99, and the ratios to the bare app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOKEN = "benchmark-relay-token-0123456789"
DISTINCT_ALERTS = 50
ALERTS_PER_PAYLOAD = 3
SERVERS = ("bare", "relay", "bare again")
# With --fresh-bodies each POST names another receiver here (same width): no body is seen twice.
RECEIVER = b"lark-0000000000"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


# -- the bare app: reads the body, answers 202 -----------------------------------------------
async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    body = b'{"accepted": 3}'
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the payloads ----------------------------------------------------------------------------
def payloads() -> list[bytes]:
    """50 notifications of three alerts each, which together cycle over 50 distinct alerts."""
    documents = []
    for index in range(DISTINCT_ALERTS):
        alerts = []
        for offset in range(ALERTS_PER_PAYLOAD):
            number = (index * ALERTS_PER_PAYLOAD + offset) % DISTINCT_ALERTS
            labels = {"alertname": "HighRequestLatency", "instance": f"app-{number}:8000", "severity": "page"}
            alerts.append(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": "High request latency",
                        "description": f"app-{number}:8000 has a mean request latency above 0.5 s",
                    },
                    "startsAt": "2026-01-01T09:52:26.739266876Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=latency",
                    "fingerprint": f"{number:016x}",
                }
            )
        documents.append(
            {
                "version": "4",
                "groupKey": '{}:{alertname="HighRequestLatency"}',
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": RECEIVER.decode(),
                "groupLabels": {"alertname": "HighRequestLatency"},
                "commonLabels": {"alertname": "HighRequestLatency", "severity": "page"},
                "commonAnnotations": {"summary": "High request latency"},
                "externalURL": "http://alertmanager.example.com:9093",
                "alerts": alerts,
            }
        )
    return [json.dumps(document).encode() for document in documents]


def requests_for(host: str, port: int) -> list[bytes]:
    return [
        (
            f"POST /alertmanager HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in payloads()
    ]


# -- the load generator (a process of its own, on the other CPU) ------------------------------
async def one_connection(
    host: str,
    port: int,
    requests: list[bytes],
    start: int,
    deadline: float,
    latencies: list[float],
    interval: float | None,
    offset: float,
    fresh: bool,
) -> None:
    """POSTs one after the other, as fast as answered, or each `interval` seconds after the
    previous one was due (answer times count from the sending: on this shared machine the
    generator itself is sometimes late, and that is not the server's time)."""
    reader, writer = await asyncio.open_connection(host, port)
    index = start
    due = time.perf_counter() + offset
    try:
        while True:
            if interval is not None:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            started = time.perf_counter()
            if started >= deadline:
                return
            request = requests[index % len(requests)]
            if fresh:
                request = request.replace(RECEIVER, b"lark-%010d" % (start * 100_000_000 + index))
            writer.write(request)
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 202"):
                raise RuntimeError(f"unexpected answer {head[:200]!r}")
            length = CONTENT_LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"no content-length in {head[:200]!r}")
            await reader.readexactly(int(length[1]))
            latencies.append(time.perf_counter() - started)
            due += interval or 0.0
    finally:
        writer.close()


async def load(
    url: str, connections: int, seconds: float, rate: float | None, fresh: bool = False
) -> dict[str, float]:
    """`seconds` of POSTs on `connections`: as fast as answered, or `rate` a second in all."""
    host, port = url.removeprefix("http://").split(":")
    requests = requests_for(host, int(port))
    latencies: list[float] = []
    interval = connections / rate if rate else None
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            one_connection(
                host,
                int(port),
                requests,
                number * 7,
                deadline,
                latencies,
                interval,
                (interval or 0.0) * number / connections,
                fresh,
            )
            for number in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "payloads_per_second": len(latencies) / elapsed,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


# -- the servers -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def on_cpu(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def start_server(app: str, environment: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), app, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log", "--http", "h11"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "REDIS_URL"))}
    env.update(environment, PYTHONPATH=str(REPO))
    process = subprocess.Popen(on_cpu(0, command), env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"uvicorn serving {app} did not start")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    server: subprocess.Popen[bytes],
    url: str,
    seconds: float,
    connections: int,
    rate: float | None = None,
    fresh: bool = False,
) -> dict[str, float]:
    """A round of load: payloads/s, p99 ms, and the server's CPU µs per payload."""
    command = [sys.executable, __file__, "--load", url, "--seconds", str(seconds)]
    command += ["--connections", str(connections), "--rate", str(rate or 0)]
    command += ["--fresh-bodies"] if fresh else []
    cpu_before = cpu_seconds(server.pid)
    output = subprocess.run(on_cpu(1, command), check=True, capture_output=True, text=True).stdout
    result = dict(json.loads(output))
    payloads_served = result["payloads_per_second"] * seconds
    result["cpu_us"] = (cpu_seconds(server.pid) - cpu_before) / payloads_served * 1e6
    return result


def settled(lark: Any) -> None:
    """Wait until the relay has posted the first cycle's cards (Lark takes 5 every 2 s): the
    rounds measure what a re-sending Alertmanager costs, not the cards' making and posting."""
    deadline = time.monotonic() + 90
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(lark.requests)
        if count != seen:
            seen, since = count, time.monotonic()
        elif count and time.monotonic() - since > 3:
            return
        time.sleep(0.2)


def redis_url() -> str | None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return "redis://127.0.0.1:6379/0"


Samples = dict[str, dict[str, list[dict[str, float]]]]  # server -> "saturated"/"paced" -> rounds


def run(rounds: int, seconds: float, connections: int, rate: float, fresh: bool) -> None:
    from lark_alert_middleware.testing import LarkReceiver

    shared_redis = redis_url()
    prefix = f"lark-alert-bench:{uuid.uuid4().hex}:"
    with LarkReceiver() as lark:
        relay_environment = {"LARK_RELAY_TOKEN": TOKEN, "LARK_WEBHOOK_URL": lark.url}
        if shared_redis:
            relay_environment.update(REDIS_URL=shared_redis, LARK_ALERT_REDIS_PREFIX=prefix)
        servers = {
            "bare": start_server("relay:bare_app", {}),
            "relay": start_server("lark_alert_middleware.relay:app", relay_environment),
            "bare again": start_server("relay:bare_app", {}),
        }
        try:
            for process, url in servers.values():
                measure(process, url, 1.0, connections)  # warm: imports, connections, the first cycle
            settled(lark)
            samples: Samples = {name: {"saturated": [], "paced": []} for name in SERVERS}
            for index in range(rounds):
                shift = index % len(SERVERS)
                for name in SERVERS[shift:] + SERVERS[:shift]:
                    saturated = measure(*servers[name], seconds, connections, None, fresh)
                    samples[name]["saturated"].append(saturated)
                    samples[name]["paced"].append(measure(*servers[name], seconds, connections, rate, fresh))
                print(f"  round {index + 1}/{rounds}", file=sys.stderr, flush=True)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
        cards = len(lark.cards)
    if shared_redis:
        _delete_keys(shared_redis, prefix)
    print(f"\n{rounds} interleaved rounds of {seconds:g} s, {connections} connections, one worker each;")
    bodies = "every body new (--fresh-bodies)" if fresh else "50 bodies, re-sent"
    where = "Redis" if shared_redis else "the process"
    print(f"relay state in {where}; {cards} cards (the first cycle); {bodies}\n")
    report(samples, rate)


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def report(samples: Samples, rate: float) -> None:
    saturated = {name: runs["saturated"] for name, runs in samples.items()}
    best = {name: max(run["payloads_per_second"] for run in runs) for name, runs in saturated.items()}
    cpu = {name: min(run["cpu_us"] for run in runs) for name, runs in saturated.items()}
    p99 = {name: statistics.median(run["p99_ms"] for run in runs["paced"]) for name, runs in samples.items()}
    print(f"| server | payloads/s (best round) | CPU per payload (least) | p99 at {rate:,.0f}/s (median) |")
    print("|---|---|---|---|")
    for name in SERVERS:
        print(
            f"| {name} | {best[name]:,.0f} ({best[name] / best['bare']:.3f}) "
            f"| {cpu[name]:.0f} µs ({cpu[name] / cpu['bare']:.2f}) | {p99[name]:.1f} ms |"
        )
    for label, name in (("relay/bare", "relay"), ("A/A control, bare again/bare", "bare again")):
        ratios = sorted(
            run["payloads_per_second"] / bare["payloads_per_second"]
            for run, bare in zip(saturated[name], saturated["bare"], strict=True)
        )
        print(f"payloads/s per round, {label}: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
    for name in SERVERS:
        answer_times = sorted(run["p99_ms"] for run in samples[name]["paced"])
        print(f"p99 per round at {rate:,.0f}/s, {name}: {', '.join(f'{ms:.1f}' for ms in answer_times)} ms")
    ratio = best["relay"] / best["bare"]
    print("\ntargets:")
    print(f"  >= 2,000 payloads/s: {best['relay']:,.0f} ({_met(best['relay'] >= 2000)})")
    print(f"  p99 < 10 ms at {rate:,.0f} payloads/s: {p99['relay']:.1f} ms ({_met(p99['relay'] < 10)})")
    print(f"  >= 0.7 of the bare app's rate: {ratio:.3f} ({_met(ratio >= 0.7)})")


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=2000.0, help="payloads/s of the p99 rounds")
    parser.add_argument(
        "--fresh-bodies",
        action="store_true",
        help="make every body new (another receiver name): no payload is parsed only once",
    )
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.load:
        rate, fresh = arguments.rate or None, arguments.fresh_bodies
        result = asyncio.run(load(arguments.load, arguments.connections, arguments.seconds, rate, fresh))
        print(json.dumps(result))
        return
    run(arguments.rounds, arguments.seconds, arguments.connections, arguments.rate, arguments.fresh_bodies)


if __name__ == "__main__":
    main()
