"""Apps under test: routes that fail the ways real services do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from lark_alert_middleware import LarkAlertMiddleware


class OrderError(Exception):
    pass


def failing_app(**options: Any) -> FastAPI:
    """A FastAPI app with the middleware added last (outermost of the user middlewares)."""
    app = FastAPI(title="orders")

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")

    @app.get("/reset/{token}")
    async def reset(token: str) -> None:
        raise HTTPException(status_code=410, detail="reset link expired")

    @app.get("/boom/{kind}")
    async def boom(kind: str) -> None:
        if kind == "value":
            raise ValueError(f"bad value {kind}")
        raise OrderError(f"order failed: {kind}")

    @app.post("/echo-fail")
    async def echo_fail(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"received": len(body)}, status_code=500)

    @app.get("/conflict")
    async def conflict() -> PlainTextResponse:
        return PlainTextResponse("version conflict", status_code=409)

    @app.get("/status/{status}")
    async def status_route(status: int) -> PlainTextResponse:
        return PlainTextResponse(f"status {status}", status_code=status)

    @app.get("/teapot")
    async def teapot() -> PlainTextResponse:
        return PlainTextResponse("short and stout", status_code=418)

    @app.get("/stream/{size}")
    async def stream(size: int, status: int = 200) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            block = bytes(range(256)) * 256  # 64 KiB
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                sent += len(piece)
                yield piece

        return StreamingResponse(chunks(), status_code=status, media_type="application/octet-stream")

    app.add_middleware(LarkAlertMiddleware, **options)
    return app


class ExportError(Exception):
    pass


def beyond_requests_app(**options: Any) -> FastAPI:
    """Failures that are not a failing response: background tasks, broken streams, websockets."""
    app = FastAPI(title="exports")

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/export")
    async def export(tasks: BackgroundTasks, status: int = 200, fail: str = "runtime") -> JSONResponse:
        def write_file() -> None:
            if fail == "none":
                return
            if fail == "runtime":
                raise RuntimeError("the export could not be written")
            raise ExportError(f"export failed: {fail}")

        tasks.add_task(write_file)
        return JSONResponse({"queued": True}, status_code=status)

    @app.get("/stream/broken")
    async def broken_stream(status: int = 200) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first part\n"
            raise RuntimeError("the stream broke after one part")

        return StreamingResponse(body(), status_code=status, media_type="text/plain")

    @app.websocket("/ws/orders/{order_id}")
    async def order_updates(websocket: WebSocket, order_id: int) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "crash":
                raise ValueError(f"order {order_id} has no updates")
            if text.startswith("close "):
                await websocket.close(code=int(text.split()[1]), reason="done")
                return
            await websocket.send_text(f"order {order_id}: {text}")

    app.add_middleware(LarkAlertMiddleware, **options)
    return app


def shop_app(**options: Any) -> FastAPI:
    """Payments and orders that answer with the status asked for (`?status=`), for routing tests."""
    app = FastAPI(title="shop")

    @app.post("/payments/{payment_id}")
    async def pay(payment_id: int, status: int = 500) -> PlainTextResponse:
        return PlainTextResponse("payment failed", status_code=status)

    @app.post("/orders/{order_id}")
    async def order(order_id: int, status: int = 422) -> PlainTextResponse:
        return PlainTextResponse("order refused", status_code=status)

    app.add_middleware(LarkAlertMiddleware, **options)
    return app
