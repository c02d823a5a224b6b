"""URLs made safe to print: whatever may be a credential becomes `***`, the rest stays readable.

Every URL this package prints or logs (webhook, Redis, in messages and in httpx's request log)
goes through `safe_url`. The URL is masked as text, not parsed and rebuilt, so what is left
reads exactly as configured (`unix:///run/redis.sock?password=***&db=0`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from .._secret_names import SecretNames

MASK = "***"
# scheme://authority, then the rest; a URL without `//` (`unix:/path`) has no host, so no userinfo.
_WITH_AUTHORITY = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL
)
_names = SecretNames()


def safe_url(url: str, *, webhook: bool = False) -> str:
    """`url` fit for logs: a password (for http(s), a lone user name too) and secret-named parameters
    become `***`; with `webhook`, also the last path segment and every query value, the token's places."""
    head, rest = "", url
    match = _WITH_AUTHORITY.match(url)
    if match is not None:
        if "@" in match["rest"]:
            # Most likely a password with an unencoded / ? or #: where it ends cannot be told.
            return f"{match['scheme']}{MASK}"
        is_http = match["scheme"].lower() in ("http://", "https://")
        head, rest = match["scheme"] + _safe_authority(match["authority"], is_http), match["rest"]
    before_fragment, hash_sign, fragment = rest.partition("#")
    path, question_mark, query = before_fragment.partition("?")
    if webhook:
        path = path.rstrip("/").rpartition("/")[0] + "/" + MASK
    query = _safe_parameters(query, every_value=webhook)
    fragment = _safe_parameters(fragment, every_value=False)
    return f"{head}{path}{question_mark}{query}{hash_sign}{fragment}"


def _safe_authority(authority: str, user_alone_is_secret: bool) -> str:
    userinfo, at_sign, host = authority.rpartition("@")
    if not at_sign:
        return authority
    user, colon, password = userinfo.partition(":")
    if password:
        return f"{user}:{MASK}@{host}"
    if user and user_alone_is_secret:
        return f"{MASK}{colon}@{host}"
    return authority


def _safe_parameters(text: str, every_value: bool) -> str:
    pieces = []
    for piece in text.split("&"):
        name, equals, value = piece.partition("=")
        if value and (every_value or _names.is_secret(unquote_plus(name))):
            piece = f"{name}{equals}{MASK}"
        pieces.append(piece)
    return "&".join(pieces)
