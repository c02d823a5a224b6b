"""Report failing FastAPI/Starlette requests to a Lark (Feishu) group, once per error per window.

The public API is `__all__`, plus the documented modules `testing` (a Lark-compatible receiver
for tests), `preview` (cards as HTML), `cli` (`lark-alert`) and `relay` (Alertmanager, Grafana,
Seq and any webhook as cards: `relay:app`, `create_relay`). Everything else is private.
"""

from ._config import AlertSettings, ConfigurationError
from ._pipeline.fingerprint import default_fingerprint
from ._records import AlerterStats, CapturedBody, ErrorEvent
from ._routes_config import Route
from ._sources.asgi import LarkAlertMiddleware
from ._sources.capture import capture_exception, capture_message, configure, report_errors
from ._sources.logs import LarkAlertHandler
from ._version import __version__

__all__ = [
    "AlertSettings",
    "AlerterStats",
    "CapturedBody",
    "ConfigurationError",
    "ErrorEvent",
    "LarkAlertHandler",
    "LarkAlertMiddleware",
    "Route",
    "__version__",
    "capture_exception",
    "capture_message",
    "configure",
    "default_fingerprint",
    "report_errors",
]
