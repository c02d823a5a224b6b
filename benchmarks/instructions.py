"""Machine instructions per request, counted by valgrind's callgrind: the hot path's cost without noise.

    python benchmarks/instructions.py [--requests 1000]

Time ratios on a shared machine move by a percent or two from run to run, which is the size
of what the request path costs. Instruction counts do not: the same code, inputs and
interpreter give the same count whatever else the machine is doing (though not from every
directory: the same commit checked out elsewhere counted about 0.3% apart). Each variant of the
benchmark app (bare, this middleware, and the status-only middleware that is the floor for
any middleware reporting failing responses) runs under callgrind twice, with N and 3N
requests after a warm-up; the difference, divided by 2N, is the cost of one request, with
start-up and the first alert cancelled out. Needs `valgrind` (Debian's package). Takes a
few minutes: the interpreter runs about fifty times slower under callgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

VARIANTS = ("bare", "floor", "lark")
ROUTES = {"2xx": "/ok/1", "404, deduplicated": "/missing/1"}
WARM_UP_REQUESTS = 200


def drive(variant: str, path: str, requests: int) -> None:
    """Runs inside callgrind: the warm-up, then `requests` requests."""
    from asgi_driver import receive, scope_for, send
    from bench_app import build_app

    app = build_app(variant)

    async def run() -> None:
        template = scope_for(path)
        for _ in range(WARM_UP_REQUESTS + requests):
            await app(dict(template), receive, send)

    asyncio.run(run())


def instructions(variant: str, path: str, requests: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--drive", variant, path, str(requests)]
    # A fixed hash seed: string hashes decide dictionary probing, and so the count.
    environment = dict(os.environ, PYTHONHASHSEED="0")
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stderr
    match = re.search(r"Collected : (\d+)", output)
    if match is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{output[-2000:]}")
    return int(match.group(1))


def per_request(variant: str, path: str, requests: int) -> float:
    with ThreadPoolExecutor(2) as pool:  # one process per core
        fewer, more = pool.map(lambda n: instructions(variant, path, n), (requests, 3 * requests))
    return (more - fewer) / (2 * requests)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--drive", nargs=3, metavar=("VARIANT", "PATH", "REQUESTS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.drive:
        variant, path, requests = arguments.drive
        drive(variant, path, int(requests))
        return
    requests = arguments.requests
    print(f"instructions per request (callgrind; {requests:,} and {3 * requests:,} requests)")
    print(f"{'route':<20}{'bare':>10}{'status-only floor':>26}{'lark-alert-middleware':>30}")
    for label, path in ROUTES.items():
        counts = {variant: per_request(variant, path, arguments.requests) for variant in VARIANTS}
        bare = counts["bare"]
        floor = f"{counts['floor']:,.0f} ({counts['floor'] / bare:.3f})"
        ours = f"{counts['lark']:,.0f} ({counts['lark'] / bare:.3f})"
        print(f"{label:<20}{bare:>10,.0f}{floor:>26}{ours:>30}", flush=True)


if __name__ == "__main__":
    main()
