"""The local inbox: every card the Lark-compatible receiver accepted, newest first, as Lark shows it.

`inbox_routes(receiver)` adds `/_alerts` (the page), `/_alerts/cards.json` and `/_alerts/kinds`
(a sample of each kind of card: new, back, repeated, escalating, recovered, the daily summary)
to the demo app.
Run on its own, it is the shared receiver of a fleet (docker compose's `lark` service):

    python -m demo_app.inbox --host 0.0.0.0 --port 8025 --webhook-port 8026 --token demo
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.routing import Route

from lark_alert_middleware._card.sample import KINDS
from lark_alert_middleware._config import load_settings
from lark_alert_middleware._pipeline.build import card_maker_for, destination_of
from lark_alert_middleware.preview import ShownCard, page_html
from lark_alert_middleware.testing import HOOK_PATH, LarkReceiver

TITLE = "Lark inbox"
KINDS_TITLE = "Each kind of card"
KIND_CAPTIONS = {
    "new": "New: an error's first card, when it was not seen in the last LARK_ALERT_MEMORY_DAYS",
    "back": "Back: its first card after a quiet spell of LARK_ALERT_REGRESSION_AFTER or more",
    "repeated": "Repeated: the next window's first card of an error still happening",
    "escalation": "Escalating: its count in the window crossed one of LARK_ALERT_ESCALATE_AT",
    "recovered": "Recovered: quiet for LARK_ALERT_RECOVERY_AFTER after its cards (opt-in)",
    "summary": "The daily summary at LARK_ALERT_DAILY_SUMMARY (opt-in)",
}


def _shown_cards(receiver: LarkReceiver) -> list[ShownCard]:
    shown = []
    for received in reversed(receiver.requests):
        card = received.message.get("card") if received.accepted and received.message else None
        if isinstance(card, dict):
            at = datetime.fromtimestamp(received.received_at).strftime("%H:%M:%S")
            shown.append(ShownCard(card, f"received {at} · {len(received.body):,} bytes"))
    return shown


def _intro(receiver: LarkReceiver, count: int) -> str:
    refused = sum(1 for received in receiver.requests if not received.accepted)
    intro = (
        f"{count} cards received by the local Lark-compatible receiver, newest first; reload for new ones. "
        "Each error alerts once per window: its repeats are counted on the next card. "
        "/_alerts/kinds shows a sample of each kind of card."
    )
    return intro + (f" {refused} posts were refused (see the demo's log)." if refused else "")


def inbox_routes(receiver: LarkReceiver | None) -> list[Route]:
    """The inbox page and its JSON; with no receiver (cards go to a real group) the page says so."""

    async def page(request: Request) -> HTMLResponse:
        if receiver is None:
            intro = "Cards go to the Lark group at LARK_WEBHOOK_URL; unset it to see them here instead."
            return HTMLResponse(page_html(TITLE, [], intro=intro))
        shown = _shown_cards(receiver)
        return HTMLResponse(page_html(TITLE, shown, intro=_intro(receiver, len(shown))))

    async def cards(request: Request) -> JSONResponse:
        shown = _shown_cards(receiver) if receiver is not None else []
        return JSONResponse([entry.card for entry in shown])

    async def kinds(request: Request) -> HTMLResponse:
        intro = "Samples from the built-in templates with this configuration; Lark's own rendering differs."
        return HTMLResponse(page_html(KINDS_TITLE, kinds_of_card(), intro=intro))

    return [Route("/_alerts", page), Route("/_alerts/cards.json", cards), Route("/_alerts/kinds", kinds)]


def kinds_of_card() -> list[ShownCard]:
    """One sample card of each kind, as the demo's configuration makes them."""
    settings = load_settings()
    cards = card_maker_for(settings, destination_of(settings), service="demo-shop")
    return [ShownCard(cards.kind_card(kind).card, KIND_CAPTIONS[kind]) for kind in KINDS]


async def _to_inbox(request: Request) -> RedirectResponse:
    return RedirectResponse("/_alerts")


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Lark-compatible webhook and its inbox page.")
    parser.add_argument("--host", default="127.0.0.1", help="address of both servers (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="the inbox page (default 8025)")
    parser.add_argument("--webhook-port", type=int, default=8026, help="the webhook (default 8026)")
    parser.add_argument("--token", default="demo", help="the token at the end of the webhook URL")
    arguments = parser.parse_args(argv)
    receiver = LarkReceiver(
        host=arguments.host,
        port=arguments.webhook_port,
        token=arguments.token,
        per_second=1000,
        per_minute=100_000,
    ).start()
    routes = [Route("/", _to_inbox), Route("/healthz", _healthz), *inbox_routes(receiver)]
    print(f"Webhook: port {receiver.port}, path {HOOK_PATH}{arguments.token}", flush=True)
    print(f"Inbox:   http://{arguments.host}:{arguments.port}/_alerts", flush=True)
    try:
        uvicorn.run(Starlette(routes=routes), host=arguments.host, port=arguments.port, log_level="warning")
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
