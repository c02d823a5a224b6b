"""The demo service. Every route but `/` and `/healthz` fails in its own way; each failure alerts once."""

from __future__ import annotations

import asyncio
import html
import os
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from lark_alert_middleware import LarkAlertMiddleware

app = FastAPI(title="demo-shop")

# (method, path, what happens): the `/` page lists these and demo_app.traffic exercises them.
FAILURES = (
    ("GET", "/orders/42/total", "unhandled ZeroDivisionError three calls deep (500)"),
    ("GET", "/orders/9999", "HTTPException 404: order not found"),
    ("POST", "/orders/42/cancel", "HTTPException 409: order already shipped"),
    ("POST", "/payments", "validation error 422: a body that is not a payment"),
    ("GET", "/inventory/7", "502: the inventory service it calls answered 500"),
    ("GET", "/reports/export", "503 on a streamed CSV export"),
    ("GET", "/search?q=shoes", "504: the search backend took too long"),
    ("GET", "/wp-login.php", "404 for a path no route matches (scanners: one alert for all)"),
)
SEARCH_TIMEOUT_SECONDS = 0.3


class Payment(BaseModel):
    order_id: int
    amount_cents: int
    card_number: str


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    rows = []
    for method, path, what in FAILURES:
        target = html.escape(path, quote=True)
        if method == "GET":
            action = f'<a href="{target}">GET {target}</a>'
        else:
            action = f'<form method="post" action="{target}"><button>POST {target}</button></form>'
        rows.append(f"<tr><td>{action}</td><td>{html.escape(what)}</td></tr>")
    inbox = html.escape(os.environ.get("DEMO_INBOX_URL", "/_alerts"), quote=True)
    return (
        '<!doctype html><meta charset="utf-8"><title>demo-shop</title>'
        "<style>body{font:15px/1.6 system-ui,sans-serif;margin:32px;max-width:860px}"
        "td{padding:4px 16px 4px 0}form{margin:0}button{font:inherit}</style><h1>demo-shop</h1>"
        f'<p>Each route fails; the alerts are in <a href="{inbox}">the inbox</a> (or your Lark group). '
        "An error alerts once per window (LARK_ALERT_RATE_LIMIT, 60 s); repeats are counted.</p>"
        f"<table>{''.join(rows)}</table>"
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def split_total(total_cents: int, parts: int) -> int:
    return total_cents // parts


def share_per_person(order_id: int, people: int) -> int:
    total_cents = 100 * order_id
    return split_total(total_cents, parts=people)


def order_summary(order_id: int) -> dict[str, int]:
    return {"order_id": order_id, "per_person_cents": share_per_person(order_id, people=0)}


@app.get("/orders/{order_id}/total")
async def order_total(order_id: int) -> dict[str, int]:
    return order_summary(order_id)


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    raise HTTPException(status_code=404, detail=f"order {order_id} not found")


@app.post("/orders/{order_id}/cancel")
async def cancel(order_id: int) -> None:
    raise HTTPException(status_code=409, detail=f"order {order_id} already shipped")


@app.post("/payments")
async def pay(payment: Payment) -> dict[str, str]:
    return {"status": "paid"}


async def _inventory_database_down(request: Request) -> PlainTextResponse:
    return PlainTextResponse("database is locked", status_code=500)


# A downstream service, called over HTTP in-process so the demo needs no second server.
inventory_service = Starlette(routes=[Route("/stock/{sku}", _inventory_database_down)])


@app.get("/inventory/{sku}")
async def inventory(sku: int) -> dict[str, int]:
    transport = httpx.ASGITransport(app=inventory_service)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        response = await client.get(f"/stock/{sku}")
    if response.status_code != 200:
        raise HTTPException(
            status_code=502, detail=f"inventory service answered {response.status_code}: {response.text}"
        )
    return {"sku": sku, "in_stock": int(response.text)}


@app.get("/reports/export")
async def export() -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        yield b"error\n"
        yield b"export queue is full, try again later\n"

    return StreamingResponse(rows(), status_code=503, media_type="text/csv", headers={"Retry-After": "30"})


async def slow_search_backend(query: str) -> list[str]:
    await asyncio.sleep(10)
    return [query]


@app.get("/search")
async def search(q: str) -> list[str]:
    try:
        return await asyncio.wait_for(slow_search_backend(q), SEARCH_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        raise HTTPException(status_code=504, detail="search backend timed out") from None


app.add_middleware(LarkAlertMiddleware)
