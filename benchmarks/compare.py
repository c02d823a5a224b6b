"""Side by side, in one run: this middleware, sentry-sdk and a BaseHTTPMiddleware against the bare app.

    python benchmarks/compare.py [--trials 5] [--rounds 150] [--requests 200]
                                 [--http-rounds 10] [--seconds 2] [--connections 16]
                                 [--no-in-process] [--no-http]

The four variants are described in bench_app.py. Two routes: a 2xx, and a 404 whose alert is
already deduplicated (the path a storm of one error takes).

In process: each trial is a fresh Python process (new hash seed, new memory layout) that builds
the bare app and one or more others, drives them through the ASGI interface in many short
interleaved rounds, and reports each one's fastest round in µs/request: what a request costs
when nothing else on the machine gets in the way. (On a shared machine a round's time only
ever grows from interference, by tens of percent for seconds at a time; the median round moved
by several percent between identical apps, the fastest by half a percent. A second bare app,
measured the same way, shows what the method cannot tell apart.) The table shows the median
over trials and, for each variant, the median of its per-trial ratios to the bare app of the
same process. sentry-sdk patches Starlette process-wide, so it has processes of its own, where
the bare app is built first and keeps Starlette's own code (checked: not one call into
sentry_sdk while it serves).

Through uvicorn: one server per variant, loaded in interleaved rounds by wrk (or, without wrk,
benchmarks/loadgen.py); with taskset, servers run on CPU 0 and the load generator on CPU 1. As in
process, each server's best round counts for requests/s (time per request relative to the bare
server); p99 latency is the median over rounds.
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
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROUTES = {"/ok/1": "2xx", "/missing/1": "404, deduplicated"}
VARIANTS = ("bare", "lark", "sentry", "base")
ALTERNATIVES = ("sentry", "base")
TARGETS = {  # (route, where) -> the largest acceptable ratio to the bare app
    ("/ok/1", "in process"): 1.02,
    ("/ok/1", "uvicorn"): 1.03,
    ("/missing/1", "in process"): 1.08,
    ("/missing/1", "uvicorn"): 1.08,
}
TIMES_LESS_OVERHEAD = 3.0


# -- in process -----------------------------------------------------------------------------
async def serves_sentry_code(app: Any, route: str) -> bool:
    from asgi_driver import receive, scope_for, send

    entered: list[str] = []

    def profile(frame: Any, event: str, argument: Any) -> None:
        if event == "call" and "sentry_sdk" in frame.f_code.co_filename:
            entered.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        await app(scope_for(route), receive, send)
    finally:
        sys.setprofile(None)
    return bool(entered)


async def trial(variants: tuple[str, ...], rounds: int, requests: int) -> dict[str, dict[str, float]]:
    """One fresh process's fastest rounds, µs/request, per route, for the bare app and `variants`."""
    import bench_app
    from overhead import round_us

    apps: dict[str, Any] = {}
    for variant in ("bare", *variants):
        if variant == "sentry":
            bench_app.pin_middleware_classes(apps["bare"])
            bench_app.init_sentry()
        apps[variant] = bench_app.build_app("bare" if variant == SECOND_BARE else variant)
        for route in ROUTES:
            await round_us(apps[variant], route, 10)  # builds the stack, sends the first alert
    if "sentry" in variants:
        for route in ROUTES:
            for variant, app in apps.items():
                if await serves_sentry_code(app, route) != (variant == "sentry"):
                    raise SystemExit(f"sentry-sdk isolation failed for {variant} on {route}")
    names = tuple(apps)
    results: dict[str, dict[str, float]] = {}
    for route in ROUTES:
        for app in apps.values():
            await round_us(app, route, 2000)  # warm: caches, the interpreter's specialised code
        samples: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            shift = index % len(names)  # each app takes each place in the order as often
            for name in names[shift:] + names[:shift]:
                samples[name].append(await round_us(apps[name], route, requests))
        results[route] = {name: min(values) for name, values in samples.items()}
    return results


# sentry-sdk patches Starlette for the whole process: it gets processes of its own.
SECOND_BARE = "bare again"
TRIAL_GROUPS = (("lark", "base", "floor", SECOND_BARE), ("sentry",))


def in_process(trials: int, rounds: int, requests: int) -> dict[str, dict[str, tuple[float, list[float]]]]:
    """Per route and variant: (median µs/request, each trial's ratio to its bare app)."""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {
        variant: [] for variant in (*VARIANTS, "floor", SECOND_BARE)
    }
    for number in range(1, trials + 1):
        for group in TRIAL_GROUPS:
            print(f"  in-process trial {number}/{trials}: {', '.join(group)}", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--trial", ",".join(group).replace(" ", "_")]
            command += ["--rounds", str(rounds), "--requests", str(requests)]
            output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE).stdout
            run = json.loads(output.strip().splitlines()[-1])
            for variant in group if "sentry" in group else ("bare", *group):
                runs[variant].append(run)
    table: dict[str, dict[str, tuple[float, list[float]]]] = {}
    for route in ROUTES:
        table[route] = {
            variant: (
                statistics.median(run[route][variant] for run in runs[variant]),
                sorted(run[route][variant] / run[route]["bare"] for run in runs[variant]),
            )
            for variant in runs
        }
    return table


# -- through uvicorn ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def on_cpu(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def start_server(variant: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "bench_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("LARK_", "SENTRY_"))
    }
    environment["BENCH_VARIANT"] = variant
    process = subprocess.Popen(on_cpu(0, command), env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ok/1", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"uvicorn serving {variant} did not start")


_WRK_LATENCY = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def load(url: str, seconds: float, connections: int) -> tuple[float, float]:
    """(requests/s, p99 ms) for `seconds` of keep-alive GETs of `url`."""
    if shutil.which("wrk"):
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
        output = subprocess.run(on_cpu(1, command), check=True, capture_output=True, text=True).stdout
        rate, latency = _WRK_RATE.search(output), _WRK_LATENCY.search(output)
        if rate is None or latency is None:
            raise SystemExit(f"could not read wrk's output:\n{output}")
        return float(rate[1]), float(latency[1]) * _UNITS[latency[2]]
    command = [sys.executable, str(HERE / "loadgen.py"), url, "--connections", str(connections)]
    command += ["--seconds", str(seconds)]
    result = json.loads(subprocess.run(on_cpu(1, command), check=True, capture_output=True, text=True).stdout)
    return result["requests_per_second"], result["p99_ms"]


def through_uvicorn(
    rounds: int, seconds: float, connections: int
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per route and variant: (best round's requests/s, median p99 ms) over interleaved rounds."""
    servers = {variant: start_server(variant) for variant in VARIANTS}
    try:
        table: dict[str, dict[str, tuple[float, float]]] = {}
        for route in ROUTES:
            for _process, url in servers.values():
                load(url + route, 1, connections)  # warm up
            samples: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
            for index in range(rounds):
                print(f"  uvicorn {ROUTES[route]}: round {index + 1}/{rounds}", file=sys.stderr, flush=True)
                shift = index % len(VARIANTS)
                for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                    samples[variant].append(load(servers[variant][1] + route, seconds, connections))
            table[route] = {
                variant: (
                    max(rate for rate, _ in values),
                    statistics.median(p99 for _, p99 in values),
                )
                for variant, values in samples.items()
            }
        return table
    finally:
        for process, _url in servers.values():
            process.terminate()
            process.wait(timeout=30)


# -- report ---------------------------------------------------------------------------------
def header() -> str:
    labels = " | ".join(bench_labels()[variant] for variant in VARIANTS)
    return f"| route | {labels} |\n|---|" + "---|" * len(VARIANTS)


def bench_labels() -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    import bench_app

    return bench_app.LABELS


def verdict(ratios: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    lines = []
    for (route, where), ratio in ratios.items():
        target = TARGETS[(route, where)]
        ours = ratio["lark"]
        lines.append(
            f"{'ok  ' if ours <= target else 'MISS'} {ROUTES[route]}, {where}: {ours:.3f} (target ≤ {target})"
        )
        for variant in ALTERNATIVES:
            times = (ratio[variant] - 1) / max(ours - 1, 1e-9)
            shown = f"{times:.0f} times" if ours > 1 else "ours unmeasurable"
            theirs = ratio[variant] - 1
            good = theirs >= TIMES_LESS_OVERHEAD * (ours - 1)
            lines.append(
                f"{'ok  ' if good else 'MISS'}   {bench_labels()[variant]} overhead {theirs:+.1%} "
                f"vs ours {ours - 1:+.1%}: {shown} (target ≥ {TIMES_LESS_OVERHEAD:.0f} times)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5, help="fresh processes in process (default 5)")
    parser.add_argument("--rounds", type=int, default=150, help="interleaved rounds per trial (default 150)")
    parser.add_argument("--requests", type=int, default=200, help="requests per round (default 200)")
    parser.add_argument("--http-rounds", type=int, default=10, help="interleaved rounds through uvicorn")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of load per round and server")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.trial:
        variants = tuple(arguments.trial.replace("_", " ").split(","))
        print(json.dumps(asyncio.run(trial(variants, arguments.rounds, arguments.requests))))
        return

    ratios: dict[tuple[str, str], dict[str, float]] = {}
    sections = []
    if not arguments.no_in_process:
        table = in_process(arguments.trials, arguments.rounds, arguments.requests)
        rows, spreads, floors, controls = [header()], [], [], []
        for route, result in table.items():
            median = {variant: statistics.median(result[variant][1]) for variant in VARIANTS}
            cells = [f"{result['bare'][0]:.1f} µs"] + [
                f"{result[v][0]:.1f} µs ({median[v]:.3f})" for v in VARIANTS[1:]
            ]
            rows.append(f"| {ROUTES[route]} | " + " | ".join(cells) + " |")
            ratios[(route, "in process")] = median
            spreads.append(f"{ROUTES[route]}: " + ", ".join(f"{ratio:.3f}" for ratio in result["lark"][1]))
            floors.append(f"{ROUTES[route]}: {statistics.median(result['floor'][1]):.3f}")
            controls.append(
                f"{ROUTES[route]}: " + ", ".join(f"{ratio:.3f}" for ratio in result[SECOND_BARE][1])
            )
        sections.append(
            f"In process, µs/request (ratio to bare): median of {arguments.trials} fresh-process trials, "
            f"each the fastest of {arguments.rounds} interleaved rounds of {arguments.requests} requests\n\n"
            + "\n".join(rows)
            + "\n\nlark-alert-middleware's ratio in each trial: "
            + "; ".join(spreads)
            + "\nFor reference, a pure ASGI middleware that only reads the status (bench_app.py): "
            + "; ".join(floors)
            + "\nA second bare app in the same trials, each trial's ratio (the method's resolution): "
            + "; ".join(controls)
        )
    if not arguments.no_http:
        generator = "wrk" if shutil.which("wrk") else "benchmarks/loadgen.py"
        table = through_uvicorn(arguments.http_rounds, arguments.seconds, arguments.connections)
        rows = [header()]
        for route, result in table.items():
            bare_rate, bare_p99 = result["bare"]
            cells = [f"{bare_rate:,.0f} req/s, p99 {bare_p99:.1f} ms"]
            for variant in VARIANTS[1:]:
                rate, p99 = result[variant]
                cells.append(f"{rate:,.0f} req/s ({bare_rate / rate:.3f}), p99 {p99:.1f} ms")
            rows.append(f"| {ROUTES[route]} | " + " | ".join(cells) + " |")
            ratios[(route, "uvicorn")] = {variant: bare_rate / result[variant][0] for variant in VARIANTS}
        sections.append(
            f"Through uvicorn, requests/s (time per request relative to bare) and p99: {generator}, "
            f"{arguments.connections} connections, the best of {arguments.http_rounds} interleaved rounds "
            f"of {arguments.seconds:g} s (p99: the median round)\n\n" + "\n".join(rows)
        )
    print("\n\n".join(sections))
    print("\n" + "\n".join(verdict(ratios)))


if __name__ == "__main__":
    main()
