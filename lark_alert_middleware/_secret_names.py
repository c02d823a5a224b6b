"""Which names are secret: the one rule a header, field, parameter or URL query name is judged by.

A name is secret when one of its words is listed (`X-Auth-Token`: x, auth, token), or it holds
one of the fragments (`PHPSESSID`), unless its last word says it is about a secret rather than
one (`KeyError`). Users add names of their own (`LARK_ALERT_REDACT_FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A name is secret when one of its words is listed, or it contains one of the fragments.
SECRET_NAME_WORDS = frozenset(
    {
        "auth",
        "authentication",
        "authorization",
        "bearer",
        "card",
        "cardnumber",
        "cc",
        "ccv",
        "code_verifier",
        "cookie",
        "cred",
        "credential",
        "credentials",
        "creds",
        "csrf",
        "cvc",
        "cvv",
        "dsn",
        "hmac",
        "jwt",
        "key",
        "nonce",
        "otp",
        "pass",
        "passcode",
        "phpsessid",
        "pin",
        "pw",
        "pwd",
        "secret",
        "sessid",
        "session",
        "sid",
        "sig",
        "signature",
        "ssn",
        "ticket",
        "token",
        "xsrf",
    }
)
SECRET_NAME_FRAGMENTS = (
    "passw",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "session",
    "sessid",
    "cookie",
    "credential",
    "authoriz",
    "signature",
    "hmac",
)
# A name ending in one of these is about a secret, not one: `KeyError`, `token_error`.
NOT_SECRET_LAST_WORDS = frozenset({"error", "errors", "exception", "failed", "failure", "warning"})
# Secret only as the whole name of a query or form parameter (OAuth's authorization code), not as a
# word of another name (`status_code`) nor as a JSON field (`"code": 404`).
SECRET_PARAMETER_NAMES = frozenset({"code"})

_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_CACHED_NAMES = 4096
_LONGEST_CACHED_NAME = 128


def normalised(name: str) -> str:
    return name.strip().lower().replace("-", "_")


class SecretNames:
    """The deny list, extended by `extra_names`; answers for each name once (a bounded cache)."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self._extra_names = frozenset(normalised(name) for name in extra_names if name.strip())
        self._cache: dict[str, bool] = {}

    def is_secret(self, name: str) -> bool:
        cached = self._cache.get(name)
        if cached is None:
            cached = self._classify(name)
            if len(self._cache) < _CACHED_NAMES and len(name) <= _LONGEST_CACHED_NAME:
                self._cache[name] = cached
        return cached

    def _classify(self, name: str) -> bool:
        normalised_name = normalised(name)
        if normalised_name in self._extra_names:
            return True
        words = [word.lower() for word in _NAME_WORDS.findall(name)]
        if words and words[-1] in NOT_SECRET_LAST_WORDS:
            return False
        if not SECRET_NAME_WORDS.isdisjoint(words) or not self._extra_names.isdisjoint(words):
            return True
        squashed = normalised_name.replace("_", "")
        return any(fragment in squashed for fragment in SECRET_NAME_FRAGMENTS)
