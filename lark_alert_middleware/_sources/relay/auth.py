"""Who may post: the relay token, as a bearer token or a `token` query parameter, in constant time."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

# A query string with more parameters than this is no tool's: refused rather than parsed.
MAX_QUERY_FIELDS = 50


class TokenCheck:
    """Allows a request that carries `token` as `Authorization: Bearer <token>` or `?token=<token>`."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def allows(self, authorization: bytes | None, query_string: bytes) -> bool:
        candidate = _bearer(authorization) if authorization is not None else None
        if candidate is None and b"token=" in query_string:
            candidate = _query_token(query_string)
        return candidate is not None and hmac.compare_digest(candidate, self._token)


def _bearer(authorization: bytes) -> bytes | None:
    scheme, _, credentials = authorization.strip().partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else None


def _query_token(query_string: bytes) -> bytes | None:
    try:
        values = parse_qs(query_string, max_num_fields=MAX_QUERY_FIELDS).get(b"token")
    except ValueError:
        return None
    return values[0] if values else None
