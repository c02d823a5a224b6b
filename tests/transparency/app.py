"""One FastAPI app exercising every way a response can be made; built bare or with the middleware.

Every route reports what the app saw (hashes, sizes, state), so that comparing the responses of
the bare and the observed app compares the app's behaviour as well as the client's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.middleware.gzip import GZipMiddleware

from lark_alert_middleware import LarkAlertMiddleware

MiB = 1024 * 1024
BLOCK = bytes(range(256)) * 256  # 64 KiB, the unit every streamed body is made of
Layout = Literal["plain", "gzip-inside", "gzip-outside"]

request_user: contextvars.ContextVar[str] = contextvars.ContextVar("request_user", default="unset")
request_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("request_tenant", default="unset")


class OrderError(Exception):
    """Turned into a 409 by an exception handler."""


class UpstreamError(Exception):
    """Turned into a 502 by an exception handler."""


def blocks(size: int) -> Iterator[bytes]:
    """`size` bytes of the repeating pattern, in 64 KiB pieces: new objects, as a socket would give."""
    sent = 0
    while sent < size:
        piece = bytes(memoryview(BLOCK)[: min(len(BLOCK), size - sent)])
        sent += len(piece)
        yield piece


def pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for piece in blocks(size):
        digest.update(piece)
    return digest.hexdigest()


def write_data_file(directory: Path) -> Path:
    """The file FileResponse routes serve: 1 MiB and a bit, so ranges cross block boundaries."""
    path = directory / "data.bin"
    if not path.exists():
        path.write_bytes(b"".join(blocks(MiB + 12345)))
    return path


async def identify_user() -> str:
    request_user.set("ann")
    return "ann"


async def open_tenant() -> AsyncIterator[str]:
    token = request_tenant.set("acme")
    yield "acme"
    request_tenant.reset(token)


def build_app(observed: bool, files: Path, layout: Layout = "plain", **options: Any) -> FastAPI:
    """The app; `observed` adds LarkAlertMiddleware with `options`; `layout` places GZip around or in it."""
    data_file = write_data_file(files)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        app.state.started = "yes"
        yield {"db": "connected"}

    app = FastAPI(title="transparency", lifespan=lifespan)
    app.state.background_done = []
    app.state.streams_closed = 0
    app.state.acks = {}
    app.state.websocket_goodbyes = {}

    @app.exception_handler(OrderError)
    async def order_error(request: Request, exception: OrderError) -> JSONResponse:
        return JSONResponse({"error": str(exception)}, status_code=409)

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, exception: UpstreamError) -> JSONResponse:
        return JSONResponse({"error": str(exception)}, status_code=502, headers={"retry-after": "5"})

    @app.api_route("/ok", methods=["GET", "HEAD"])
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.api_route("/json", methods=["GET", "HEAD"])
    async def json_document() -> dict[str, Any]:
        return {"items": [{"id": index, "name": f"item {index}"} for index in range(50)], "unicode": "ünï"}

    @app.get("/items/{item_id}")
    async def missing_item(item_id: int) -> None:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found", headers={"x-reason": "gone"})

    @app.get("/conflict")
    async def conflict() -> None:
        raise OrderError("order 7 was changed meanwhile")

    @app.get("/upstream")
    async def upstream() -> None:
        raise UpstreamError("the payment service timed out")

    @app.get("/session")
    async def session(request: Request) -> dict[str, Any]:
        return {"visits": request.session.get("visits", 0)}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("the handler crashed")

    @app.get("/text")
    async def text(size: int = 4096, status: int = 200) -> PlainTextResponse:
        return PlainTextResponse("all work and no play " * (size // 21), status_code=status)

    @app.api_route("/stream", methods=["GET", "HEAD"])
    async def stream(size: int, status: int = 200) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for piece in blocks(size):
                yield piece

        return StreamingResponse(body(), status_code=status, media_type="application/octet-stream")

    @app.get("/stream-then-fail")
    async def stream_then_fail() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield BLOCK
            yield BLOCK
            raise RuntimeError("the stream broke after two blocks")

        return StreamingResponse(body(), media_type="application/octet-stream")

    @app.get("/forever")
    async def forever(status: int = 200) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield BLOCK
                    await anyio.lowlevel.checkpoint()
            finally:
                app.state.streams_closed += 1

        return StreamingResponse(body(), status_code=status, media_type="application/octet-stream")

    @app.get("/events")
    async def events(count: int, lockstep: str = "") -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for index in range(count):
                yield f'id: {index}\nevent: tick\ndata: {{"n": {index}}}\n\n'
                if lockstep:
                    # The next event is produced only once the client has the previous one.
                    await ack_event(f"{lockstep}/{index}").wait()

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    def ack_event(key: str) -> anyio.Event:
        acks: dict[str, anyio.Event] = app.state.acks
        return acks.setdefault(key, anyio.Event())

    @app.post("/events/ack/{stream}/{index}")
    async def ack(stream: str, index: int) -> dict[str, bool]:
        ack_event(f"{stream}/{index}").set()
        return {"acked": True}

    @app.api_route("/file", methods=["GET", "HEAD"])
    async def file() -> FileResponse:
        return FileResponse(data_file, media_type="application/octet-stream")

    @app.get("/background")
    async def background(key: str, tasks: BackgroundTasks) -> dict[str, str]:
        def finish() -> None:
            app.state.background_done.append(key)

        tasks.add_task(finish)
        return {"scheduled": key}

    @app.get("/background-done")
    async def background_done(key: str) -> dict[str, bool]:
        return {"done": key in app.state.background_done}

    @app.get("/lifespan")
    async def lifespan_state(request: Request) -> dict[str, str]:
        return {"db": request.state.db, "started": request.app.state.started}

    @app.get("/context")
    async def context(
        user: str = Depends(identify_user), tenant: str = Depends(open_tenant)
    ) -> dict[str, str]:
        return {
            "user": request_user.get(),
            "tenant": request_tenant.get(),
            "from_dependencies": user + tenant,
        }

    @app.post("/body-twice")
    async def body_twice(request: Request) -> dict[str, Any]:
        first = await request.body()
        second = await request.body()
        return {
            "size": len(first),
            "first": hashlib.sha256(first).hexdigest(),
            "same": first == second,
        }

    @app.post("/upload")
    async def upload(request: Request, status: int = 200) -> JSONResponse:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()}, status_code=status)

    @app.get("/state")
    async def state() -> dict[str, int]:
        return {"streams_closed": app.state.streams_closed, "tasks": len(asyncio.all_tasks())}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(headers=[(b"x-echo", b"yes")])
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=4000, reason="client said bye")
                return
            await websocket.send_text(f"echo: {text}")

    @app.websocket("/ws-crash")
    async def crashing_websocket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"echo: {await websocket.receive_text()}")
        await websocket.receive_text()
        raise RuntimeError("the websocket handler crashed")

    @app.websocket("/ws-listen/{key}")
    async def listening_websocket(websocket: WebSocket, key: str) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(f"heard: {await websocket.receive_text()}")
        except WebSocketDisconnect as goodbye:
            app.state.websocket_goodbyes[key] = [goodbye.code, goodbye.reason]
            raise  # as an endpoint that does not catch it would

    @app.get("/ws-goodbye/{key}")
    async def websocket_goodbye(key: str) -> list[object] | None:
        goodbye: list[object] | None = app.state.websocket_goodbyes.get(key)
        return goodbye

    @app.websocket("/ws-refused")
    async def refused_websocket(websocket: WebSocket) -> None:
        await websocket.close(code=1008, reason="no token")

    if layout == "gzip-inside":
        app.add_middleware(GZipMiddleware, minimum_size=500)
    if observed:
        app.add_middleware(LarkAlertMiddleware, **options)
    if layout == "gzip-outside":
        app.add_middleware(GZipMiddleware, minimum_size=500)
    return app
