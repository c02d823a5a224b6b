"""The demo service. Every route but `/` fails in its own way; each failure reaches the Lark group once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel

from lark_alert_middleware import LarkAlertMiddleware

app = FastAPI(title="demo-shop")

FAILURES = {
    "/orders/42/total": "unhandled ZeroDivisionError deep in a call (500)",
    "/orders/9999": "HTTPException 404: order not found",
    "/orders/42/cancel": "HTTPException 409: already shipped",
    "/payments": "validation error 422 (POST with a bad body)",
    "/inventory/7": "502 from a downstream call",
    "/reports/export": "503 in the middle of a streamed response",
    "/search?q=slow": "504 after a slow dependency",
}


class Payment(BaseModel):
    order_id: int
    amount_cents: int
    card_number: str


def split_total(total: int, parts: int) -> int:
    return total // parts


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    items = "".join(f'<li><a href="{path}">{path}</a> {what}</li>' for path, what in FAILURES.items())
    return f"<h1>demo-shop</h1><p>Each link fails; alerts go to Lark.</p><ul>{items}</ul>"


@app.get("/orders/{order_id}/total")
async def order_total(order_id: int) -> dict[str, int]:
    return {"order_id": order_id, "per_person": split_total(100, parts=0)}


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    raise HTTPException(status_code=404, detail=f"order {order_id} not found")


@app.post("/orders/{order_id}/cancel")
@app.get("/orders/{order_id}/cancel")
async def cancel(order_id: int) -> None:
    raise HTTPException(status_code=409, detail="order already shipped")


@app.post("/payments")
async def pay(payment: Payment) -> dict[str, str]:
    return {"status": "paid"}


@app.get("/inventory/{sku}")
async def inventory(sku: int) -> None:
    raise HTTPException(status_code=502, detail="inventory service answered 500")


@app.get("/reports/export")
async def export() -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        yield b"id,total\n"
        yield b"1,100\n"

    return StreamingResponse(rows(), status_code=503, media_type="text/csv")


@app.get("/search")
async def search(q: str) -> None:
    await asyncio.sleep(0.2)
    raise HTTPException(status_code=504, detail="search backend timed out")


app.add_middleware(LarkAlertMiddleware)
