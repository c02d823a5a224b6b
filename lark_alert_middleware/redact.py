"""What is secret and how it is removed, before anything reaches a card.

Two rules, applied everywhere: a value whose *name* looks secret (header, query parameter,
JSON field at any depth, form field) is replaced whole; a value whose *shape* is secret
(bearer token, JWT, private key, card number that passes the Luhn check, URL password)
is replaced wherever it appears, in any text. The marker names what was removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

ScrubHook = Callable[[str], str]

# A name is secret when one of its words is listed, or it contains one of the fragments.
SECRET_NAME_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "bearer",
        "card",
        "cardnumber",
        "cc",
        "ccv",
        "code_verifier",
        "cookie",
        "credential",
        "credentials",
        "csrf",
        "cvc",
        "cvv",
        "dsn",
        "jwt",
        "key",
        "otp",
        "pass",
        "pin",
        "pwd",
        "secret",
        "session",
        "sid",
        "sig",
        "signature",
        "ssn",
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
    "cookie",
    "credential",
    "authoriz",
    "signature",
)

_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def marker(kind: str) -> str:
    """The text that replaces a secret: says what was removed, never any part of it."""
    return f"[redacted {kind}]"


class Redactor:
    """Redacts names and shapes; `extra_names` extends the deny list, `scrub` runs last on all text."""

    def __init__(self, extra_names: Iterable[str] = (), scrub: ScrubHook | None = None) -> None:
        self._extra_names = frozenset(_normalise(name) for name in extra_names if name.strip())
        self._scrub = scrub
        self._name_cache: dict[str, bool] = {}

    # -- names ------------------------------------------------------------------------------
    def is_secret_name(self, name: str) -> bool:
        cached = self._name_cache.get(name)
        if cached is None:
            cached = self._classify(name)
            if len(self._name_cache) < 4096:
                self._name_cache[name] = cached
        return cached

    def _classify(self, name: str) -> bool:
        normalised = _normalise(name)
        if normalised in self._extra_names:
            return True
        words = {word.lower() for word in _NAME_WORDS.findall(name)}
        if words & SECRET_NAME_WORDS or words & self._extra_names:
            return True
        squashed = normalised.replace("_", "")
        return any(fragment in squashed for fragment in SECRET_NAME_FRAGMENTS)

    # -- values -----------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Remove secret-shaped values and `name=value` pairs with secret names from free text."""
        value = _PRIVATE_KEY.sub(marker("private key"), value)
        value = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {marker('credentials')}", value)
        value = _JWT.sub(marker("jwt"), value)
        value = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{marker('password')}@", value)
        value = _AWS_KEY.sub(marker("access key"), value)
        value = _CARD_CANDIDATE.sub(_redact_card_number, value)
        value = _JSON_PAIR.sub(self._redact_json_pair, value)
        value = _ASSIGNMENT.sub(self._redact_assignment, value)
        if self._scrub is not None:
            value = self._scrub(value)
        return value

    def pair(self, name: str, value: str) -> str:
        """A named value (header, query parameter, form field)."""
        if self.is_secret_name(name):
            return marker(name.lower())
        return self.text(value)

    def pairs(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Named values; a name can itself carry a secret (`?<jwt>` parses as a name)."""
        return [(self.text(name), self.pair(name, value)) for name, value in items]

    def json(self, document: Any) -> Any:
        """A parsed JSON document, at any depth."""
        if isinstance(document, dict):
            return {
                key: marker(str(key).lower()) if self.is_secret_name(str(key)) else self.json(value)
                for key, value in document.items()
            }
        if isinstance(document, list):
            return [self.json(item) for item in document]
        if isinstance(document, str):
            return self.text(document)
        return document

    def _redact_json_pair(self, match: re.Match[str]) -> str:
        if self.is_secret_name(match.group("name")):
            return f'{match.group("key")}"{marker(match.group("name").lower())}"'
        return match.group(0)

    def _redact_assignment(self, match: re.Match[str]) -> str:
        if self.is_secret_name(match.group("name")):
            return f"{match.group('name')}{match.group('sep')}{marker(match.group('name').lower())}"
        return match.group(0)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _redact_card_number(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return marker("card number")
    return match.group(0)


_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|digest|token|apikey)\s+[A-Za-z0-9._~+/=-]{8,}")
# No word boundary: "eyJ" (base64 of '{"') is distinctive, and glued-on prefixes must not hide one.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
_AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
# Issuer prefixes 2-6 (Mastercard, Amex, Visa, Discover...); keeps millisecond timestamps out.
_CARD_CANDIDATE = re.compile(r"(?<![\d.])[2-6](?:[ -]?\d){12,18}(?![\d.])")
# "name": "value" or "name": 123 inside text that could not be parsed (e.g. cut-off JSON).
_JSON_PAIR = re.compile(r'(?P<key>"(?P<name>[A-Za-z0-9_.\-]{1,64})"\s*:\s*)(?:"(?:[^"\\]|\\.)*"?|[^,}\]\s]+)')
# name=value and name: value in form bodies, query strings, logs and messages.
_ASSIGNMENT = re.compile(r"(?P<name>\b[A-Za-z][A-Za-z0-9_.\-]{0,63})(?P<sep>=|: ?)(?P<value>[^&\s,;\"']+)")
