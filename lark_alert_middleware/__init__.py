"""Report failing FastAPI/Starlette requests to a Lark (Feishu) group, once per error per window.

The public API is `__all__`, plus the documented modules `testing` (a Lark-compatible receiver
for tests), `preview` (cards as HTML), `cli` (`lark-alert`) and `relay` (Alertmanager, Grafana,
Seq and any webhook as cards: `relay:app`, `create_relay`). Everything else is private.
"""

from ._config import AlertSettings, ConfigurationError
from ._pipeline.fingerprint import default_fingerprint
from ._records import AlerterStats, CapturedBody, ErrorEvent
from ._sources.asgi import LarkAlertMiddleware
from ._version import __version__

__all__ = [
    "AlertSettings",
    "AlerterStats",
    "CapturedBody",
    "ConfigurationError",
    "ErrorEvent",
    "LarkAlertMiddleware",
    "__version__",
    "default_fingerprint",
]
