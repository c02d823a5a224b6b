"""The app uvicorn serves in integration tests; the middleware reads its settings from the environment."""

import logging

from tests.apps import failing_app

# As a service with logging set up would: the middleware's INFO lines (counters at exit) are shown.
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
logging.getLogger("lark_alert_middleware").addHandler(_handler)
logging.getLogger("lark_alert_middleware").setLevel(logging.INFO)

app = failing_app()
