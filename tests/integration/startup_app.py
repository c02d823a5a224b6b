"""An app whose start-up fails as a bad migration would: uvicorn logs it and exits with status 3."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from lark_alert_middleware import LarkAlertMiddleware


class MigrationError(Exception):
    pass


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raise MigrationError("migration 0042 failed: column orders.total does not exist")
    yield


app = FastAPI(title="orders", lifespan=lifespan)
app.add_middleware(LarkAlertMiddleware)
