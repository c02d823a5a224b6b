"""A small Starlette service as a user would have it; the middleware is added only when asked."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"greeting": "hello"}


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.greeting)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "again": len(await request.body())})


async def missing(request: Request) -> None:
    raise HTTPException(status_code=404, detail="no such thing")


async def fail(request: Request) -> None:
    raise RuntimeError("database is down")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/echo", echo, methods=["POST"]),
        Route("/missing", missing),
        Route("/fail", fail),
    ],
    lifespan=lifespan,
)

if os.environ.get("ADD_LARK_MIDDLEWARE") == "1":
    from lark_alert_middleware import LarkAlertMiddleware

    app.add_middleware(LarkAlertMiddleware, rate_limit=0)
