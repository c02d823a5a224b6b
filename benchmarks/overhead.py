"""Per-request cost of the middleware, in process, against the bare app in the same run.

    python benchmarks/overhead.py [--rounds 150] [--requests 200]

Drives two identical FastAPI apps (bare, and with LarkAlertMiddleware; see bench_app.py) through
the ASGI interface directly, alternating short rounds so that both see the same machine state,
and prints the fastest round's µs/request of each and their ratio for a 2xx route and for a 404
route whose alert is already deduplicated (the path a storm of one error takes). Interference
from the rest of the machine only ever slows a round down, so the fastest is the cost itself
(compare.py explains more).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from asgi_driver import receive, scope_for, send
from bench_app import build_app
from starlette.types import ASGIApp


async def round_us(app: ASGIApp, path: str, requests: int) -> float:
    template = scope_for(path)
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(template), receive, send)
    return (time.perf_counter() - started) / requests * 1e6


async def measure(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    apps = {"bare": build_app("bare"), "middleware": build_app("lark")}
    results: dict[str, dict[str, float]] = {}
    for route in ("/ok/1", "/missing/1"):
        for app in apps.values():  # warm up: build stacks, first alert, caches
            await round_us(app, route, 2000)
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(await round_us(app, route, requests))
        results[route] = {name: min(values) for name, values in samples.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    results = asyncio.run(measure(arguments.rounds, arguments.requests))
    print(f"{'route':<28}{'bare µs/req':>12}{'with µs/req':>13}{'ratio':>8}")
    labels = {"/ok/1": "2xx", "/missing/1": "404, deduplicated"}
    for route, result in results.items():
        ratio = result["middleware"] / result["bare"]
        print(f"{labels[route]:<28}{result['bare']:>12.2f}{result['middleware']:>13.2f}{ratio:>8.3f}")


if __name__ == "__main__":
    main()
