"""An app whose routes log errors, served by uvicorn with LARK_ALERT_CAPTURE_LOGS set in the environment.

Its logging is set up as a service's often is: everything, uvicorn's records included, goes to
the root logger, which writes to stderr at APP_LOG_LEVEL (default INFO).
"""

import logging
import os

from fastapi import FastAPI

from lark_alert_middleware import LarkAlertMiddleware

logging.basicConfig(
    level=os.environ.get("APP_LOG_LEVEL", "INFO"),
    format="%(levelname)s %(name)s [%(threadName)s] %(message)s",
)
logging.getLogger("uvicorn").propagate = True  # uvicorn's own configuration keeps its records to itself
for name in ("httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.NOTSET)  # whatever the root logger takes

payments = logging.getLogger("shop.payments")
app = FastAPI(title="shop")


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}


@app.post("/orders/{order_id}/pay")
def pay(order_id: int, records: int = 1) -> dict[str, int]:
    for number in range(order_id, order_id + records):
        payments.error(
            "payment provider timed out, order %s left unpaid", number, extra={"provider": "acme-pay"}
        )
    return {"logged": records}


@app.get("/orders/{order_id}/split")
async def split(order_id: int) -> None:
    raise ZeroDivisionError(f"order {order_id} has no parts")


app.add_middleware(LarkAlertMiddleware)
