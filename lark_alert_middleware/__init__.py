"""Report failing FastAPI/Starlette requests to a Lark (Feishu) group, once per error per window."""

__version__ = "0.1.0"  # first: modules imported below read it

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
