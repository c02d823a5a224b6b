"""Sample traffic: every failing route of the demo, some twice, sent to one or more replicas.

python -m demo_app.traffic http://127.0.0.1:8000 [http://127.0.0.1:8001 ...]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: Any = None


# The unhandled exception goes first: its card (the one with a traceback) ends up last in the inbox.
CALLS = (
    Call("GET", "/orders/42/total"),
    Call("GET", "/orders/43/total"),
    Call("GET", "/orders/9999"),
    Call("GET", "/orders/9998"),
    Call("POST", "/orders/42/cancel"),
    Call("POST", "/payments", {"order_id": "x", "amount_cents": 5, "card_number": "4111 1111 1111 1111"}),
    Call("GET", "/inventory/7"),
    Call("GET", "/reports/export"),
    Call("GET", "/search?q=shoes"),
    Call("GET", "/wp-login.php"),
    Call("GET", "/.env"),
)


@dataclass(frozen=True, slots=True)
class Result:
    base_url: str
    call: Call
    status_code: int


def fire(base_urls: Sequence[str]) -> list[Result]:
    """Send every call to every base URL, in order; print a line for each."""
    results = []
    # A new connection per request: uvicorn closes one after an unhandled exception.
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=30, limits=no_keepalive) as client:
        for number, call in enumerate(CALLS, start=1):
            for base_url in base_urls:
                response = client.request(
                    call.method,
                    base_url + call.path,
                    json=call.json,
                    headers={"X-Request-ID": f"demo-{number:02d}"},
                )
                results.append(Result(base_url, call, response.status_code))
                where = f"{base_url} " if len(base_urls) > 1 else ""
                print(f"  {where}{call.method:4} {call.path:20} -> {response.status_code}", flush=True)
    return results


def main(arguments: Sequence[str]) -> int:
    if not arguments or any(not url.startswith(("http://", "https://")) for url in arguments):
        print("usage: python -m demo_app.traffic BASE_URL [BASE_URL ...]", file=sys.stderr)
        return 2
    fire([url.rstrip("/") for url in arguments])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
