"""Run the demo: `python -m demo_app` (what `make demo` does).

Without LARK_WEBHOOK_URL, alerts go to a Lark-compatible receiver started here on loopback;
with it, they go to your real group. Sample traffic is fired once the server is up.
"""

from __future__ import annotations

import argparse
import os
import threading

import httpx
import uvicorn

from lark_alert_middleware.testing import LarkReceiver

TRAFFIC = [
    ("GET", "/orders/42/total", None),
    ("GET", "/orders/43/total", None),
    ("GET", "/orders/9999", None),
    ("GET", "/orders/9998", None),
    ("POST", "/orders/42/cancel", None),
    ("POST", "/payments", {"order_id": "x", "amount_cents": 5, "card_number": "4111 1111 1111 1111"}),
    ("GET", "/inventory/7", None),
    ("GET", "/reports/export", None),
    ("GET", "/search?q=slow", None),
    ("GET", "/", None),
]


def fire_traffic(base_url: str) -> None:
    # A new connection per request: uvicorn closes one after an unhandled exception.
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, timeout=10, limits=no_keepalive) as client:
        for method, path, body in TRAFFIC:
            response = client.request(
                method, path, json=body, headers={"X-Request-ID": f"demo-{path.strip('/')}"}
            )
            print(f"  {method:4} {path:22} -> {response.status_code}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the lark-alert-middleware demo.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--once", action="store_true", help="fire the traffic, report, and exit")
    arguments = parser.parse_args()

    receiver = None
    if not os.environ.get("LARK_WEBHOOK_URL"):
        receiver = LarkReceiver(per_second=1000, per_minute=100_000).start()
        os.environ["LARK_WEBHOOK_URL"] = receiver.url
        print(f"No LARK_WEBHOOK_URL set: alerts go to a local Lark-compatible receiver ({receiver.url}).")
    print(
        "Dedup:",
        "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "in-process (set REDIS_URL for Redis)",
    )

    config = uvicorn.Config("demo_app.app:app", host=arguments.host, port=arguments.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the demo server could not start")
        thread.join(0.05)
    base_url = f"http://{arguments.host}:{arguments.port}"
    print(f"Demo service on {base_url} — firing sample traffic:")
    fire_traffic(base_url)
    if receiver is not None:
        cards = receiver.wait_for_cards(7, timeout=30)
        print(f"\n{len(cards)} alerts received (repeats deduplicated):")
        for card in cards:
            print("  ", card["header"]["title"]["content"])
    if arguments.once:
        server.should_exit = True
        thread.join(15)
        if receiver is not None:
            receiver.stop()
        return
    print(f"\nServing {base_url} until Ctrl-C. Open it and click the failing links.")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(15)


if __name__ == "__main__":
    main()
