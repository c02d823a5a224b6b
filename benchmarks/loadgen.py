"""A small HTTP/1.1 keep-alive load generator, for machines without wrk.

    python benchmarks/loadgen.py http://127.0.0.1:8000/ok/1 --connections 16 --seconds 3

Prints one JSON line: requests per second and the 99th percentile latency in milliseconds.
Raw sockets and asyncio: far cheaper per request than an HTTP client library, so that the
server, not the generator, is what is measured (still slower than wrk; prefer wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from urllib.parse import urlsplit

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def one_connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (started := time.perf_counter()) < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"no content-length in {head[:200]!r}")
            await reader.readexactly(int(length[1]))
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def load(url: str, connections: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: loadgen\r\n\r\n".encode()
    )
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(one_connection(host, port, request, deadline, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    return {"requests_per_second": len(latencies) / elapsed, "p99_ms": p99 * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(load(arguments.url, arguments.connections, arguments.seconds))))


if __name__ == "__main__":
    main()
