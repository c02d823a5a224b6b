"""Report failing FastAPI/Starlette requests to a Lark (Feishu) group, once per error per window."""

from .config import AlertSettings, ConfigurationError
from .event import CapturedBody, ErrorEvent
from .fingerprint import default_fingerprint
from .middleware import LarkAlertMiddleware
from .stats import AlerterStats

__all__ = [
    "AlertSettings",
    "AlerterStats",
    "CapturedBody",
    "ConfigurationError",
    "ErrorEvent",
    "LarkAlertMiddleware",
    "default_fingerprint",
]
__version__ = "0.1.0"
