"""Keeping the relay's secrets out of every log line: uvicorn's access log prints the query
string, where a tool that cannot set headers sends the token (`?token=`)."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

MASK = "***"
# The loggers whose lines can hold what a client sent: uvicorn's, and this package's.
LOGGERS = ("uvicorn.access", "uvicorn.error", "lark_alert_middleware")
_TOKEN_PARAMETER = re.compile(r"((?:^|[?&;])token=)[^&;\s\"']*", re.IGNORECASE)


class SecretMask(logging.Filter):
    """Replaces the value of every `token=` parameter, and each secret it was told, with ***."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        self._secrets.update({secret, quote(secret, safe="")})

    def mask(self, text: str) -> str:
        if "token=" in text or "TOKEN=" in text.upper():
            text = _TOKEN_PARAMETER.sub(rf"\g<1>{MASK}", text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        # The arguments keep their shape: uvicorn's access formatter unpacks them.
        if isinstance(record.args, tuple):
            record.args = tuple(self.mask(item) if isinstance(item, str) else item for item in record.args)
        if isinstance(record.msg, str):
            record.msg = self.mask(record.msg)
        return True


secret_mask = SecretMask()


def mask_in_logs(*secrets: str) -> None:
    """Keep `secrets` (and `token=` values) out of the lines of uvicorn's and this package's loggers."""
    for secret in secrets:
        secret_mask.add(secret)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if secret_mask not in logger.filters:
            logger.addFilter(secret_mask)
