"""What is secret and how it is removed, before anything reaches a card.

Two rules, applied everywhere: a value whose *name* looks secret (header, query parameter,
JSON field, form field, route parameter; in any text `name=value`, `name: value`, quoted or
not, `("name", "value")` and `<name>value</name>`) is replaced whole; a value whose *shape* is
secret (bearer token, JWT, private key, well-known API token, webhook URL, URL credentials,
card number that passes the Luhn check) is replaced wherever it appears, in any text. The
marker names what was removed.

Every pattern takes time linear in the text: a match can begin only where a run of its first
characters begins, every other repetition is bounded or stops at a character it cannot
contain, and no run is scanned again from inside. A card shows a few thousand characters of a
text at most, so long texts are redacted only as far as a card can show (`Redactor.excerpt`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.convertors import CONVERTOR_TYPES

from .._secret_names import SECRET_PARAMETER_NAMES, SecretNames, normalised

ScrubHook = Callable[[str], str]

# How much of a long text is redacted: several times the most a card shows of any text
# (view.FULL_SIZES), so that what is shown lies far inside what was redacted.
WINDOW = 16 * 1024

_LONGEST_NAME = 128  # names longer are not shown whole in a marker


def marker(kind: str) -> str:
    """The text that replaces a secret: says what was removed, never any part of it."""
    return f"[redacted {kind}]"


class Redactor:
    """Redacts names and shapes; `extra_names` extends the deny list, `scrub` runs last on all text."""

    def __init__(self, extra_names: Iterable[str] = (), scrub: ScrubHook | None = None) -> None:
        self._names = SecretNames(extra_names)
        self.is_secret_name = self._names.is_secret
        self._scrub = scrub
        self.runs_user_code = scrub is not None

    # -- values -----------------------------------------------------------------------------
    def text(self, value: str) -> str:
        """Remove secret-shaped values and the values of secret names from free text."""
        # Each check in front of a pattern is a substring every match contains: most texts have none.
        if "-----BEGIN " in value:
            value = _PRIVATE_KEY.sub(marker("private key"), value)
        if "<" in value:
            value = _XML_ELEMENT.sub(self._redact_element, value)
        if "," in value:
            value = _QUOTED_PAIR.sub(self._redact_quoted_pair, value)
        if "=" in value or ":" in value:
            value = self._redact_named_values(value)
        lowered = value.lower()  # for the anchors of the patterns that ignore case
        if any(scheme in lowered for scheme in _AUTH_SCHEMES):
            value = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {marker('credentials')}", value)
        if "eyJ" in value:
            value = _JWT.sub(lambda m: m.group("head")[:-3] + marker("jwt"), value)
        if "://" in value:
            value = _URL_CREDENTIALS.sub(_redact_url_credentials, value)
        if "hook" in lowered:
            value = _WEBHOOK.sub(lambda m: m.group("path") + marker("webhook token"), value)
        value = _API_TOKEN.sub(_redact_api_token, value)
        value = _CARD_CANDIDATE.sub(_redact_card_number, value)
        if self._scrub is not None:
            value = self._scrub(value)
        return value

    def excerpt(self, value: str, *, keep_end: bool = False) -> str:
        """What a card can show of a long text, redacted: its first (or last) WINDOW characters.

        A token cut by the window's edge is left out whole, and so is a line cut at the start,
        so no piece of a secret that began or ended outside the window is shown."""
        if len(value) <= WINDOW:
            return self.text(value)
        if keep_end:
            return "…" + self.text(_without_key_tail(value[_window_start(value, len(value) - WINDOW) :]))
        return self.text(value[: _window_end(value, WINDOW)]) + "…"

    def pair(self, name: str, value: str) -> str:
        """A named value (header, query parameter, form field)."""
        if self.is_secret_name(name) or normalised(name) in SECRET_PARAMETER_NAMES:
            return self._marker_for(name)
        return self.excerpt(value)

    def pairs(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Named values; a name can itself carry a secret (`?<jwt>` parses as a name)."""
        return [(self.text(name), self.pair(name, value)) for name, value in items]

    def path(self, path: str, route: str | None) -> str:
        """The request path with its secret-named route parameters replaced: `/reset/{token}`
        shows `/reset/[redacted token]`. A path its route does not match is redacted as text."""
        pattern = _route_pattern(route) if route else None
        match = _match_route(pattern, path) if pattern is not None else None
        if pattern is None or match is None:
            return self.text(path)
        pieces: list[str] = []
        position = 0
        for group, name in enumerate(pattern.names):
            if self.is_secret_name(name):
                start, end = match.span(f"p{group}")
                pieces += [path[position:start], marker(name.lower())]
                position = end
        pieces.append(path[position:])
        return self.text("".join(pieces))

    def json(self, document: Any, *, max_depth: int) -> Any:
        """A parsed JSON document with its secrets removed, as a card shows it: containers deeper
        than `max_depth` are summarised, and members past about WINDOW characters only counted."""
        budget = WINDOW

        def redacted(value: Any, depth: int) -> Any:
            nonlocal budget
            budget -= 2 * depth + 8  # a member's indentation and punctuation, pretty-printed
            if isinstance(value, str):
                shown = self.excerpt(value)
                budget -= len(shown)
                return shown
            if isinstance(value, dict):
                if depth >= max_depth:
                    return f"{{… {len(value)} keys}}"
                members: dict[str, Any] = {}
                for index, (key, item) in enumerate(value.items()):
                    if budget <= 0:
                        members["…"] = f"{len(value) - index:,} more keys"
                        break
                    name = str(key)
                    shown_name = self.excerpt(name)
                    budget -= len(shown_name)
                    secret = self.is_secret_name(name)
                    members[shown_name] = self._marker_for(name) if secret else redacted(item, depth + 1)
                return members
            if isinstance(value, list):
                if depth >= max_depth:
                    return f"[… {len(value)} items]"
                if _is_secret_pair(value, self):  # ["password", "hunter2"]
                    return [self.excerpt(value[0]), self._marker_for(value[0])]
                items: list[Any] = []
                for index, item in enumerate(value):
                    if budget <= 0:
                        items.append(f"… {len(value) - index:,} more items")
                        break
                    items.append(redacted(item, depth + 1))
                return items
            return value

        return redacted(document, 0)

    def _marker_for(self, name: str) -> str:
        """The marker for the value of `name`; a name can itself hold a secret (`token_<jwt>`)."""
        return marker(self.text(name)[:_LONGEST_NAME].lower())

    # -- names in text -----------------------------------------------------------------------
    def _redact_named_values(self, text: str) -> str:
        """`name=value`, `name: value` and their quoted forms. A name is looked at before its value
        is taken: a harmless name never swallows what follows (`error: token=…`, `q=token=…`)."""
        pieces: list[str] = []
        done = 0  # text[:done] is in pieces
        position = 0
        while (found := _NAME_AND_SEPARATOR.search(text, position)) is not None:
            position = found.end()
            if not self._is_secret_here(found, text):
                continue
            value = _QUOTED_VALUE.match(text, position)
            if value is None:
                words = _LINE_VALUE if found.group("separator") == ":" else _WORD_VALUE
                value = words.match(text, position)
            if value is None:  # nothing, or a structure whose own names are looked at in turn
                continue
            replacement = _replace_value(value.group(0), marker(found.group("name").lower()))
            pieces += [text[done:position], replacement]
            done = position = value.end()
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _is_secret_here(self, found: re.Match[str], text: str) -> bool:
        start = found.start("name")
        quote = found.group("quote")
        if quote and text[start - len(quote) : start] != quote:  # a quote after the name only
            return False
        name = found.group("name")
        if self.is_secret_name(name):
            return True
        in_query = found.group("separator") == "=" and start > 0 and text[start - 1] in "?&"
        return in_query and name.lower() in SECRET_PARAMETER_NAMES

    def _redact_element(self, match: re.Match[str]) -> str:
        if not self.is_secret_name(match.group("name")) or not match.group("value").strip():
            return match.group(0)
        return match.group(0)[: match.start("value") - match.start()] + marker(match.group("name").lower())

    def _redact_quoted_pair(self, match: re.Match[str]) -> str:
        if not self.is_secret_name(match.group("name")):
            return match.group(0)
        return match.group("head") + _replace_value(match.group("value"), marker(match.group("name").lower()))


def _is_secret_pair(items: list[Any], redactor: Redactor) -> bool:
    return (
        len(items) == 2
        and isinstance(items[0], str)
        and not isinstance(items[1], (dict, list))
        and redactor.is_secret_name(items[0])
    )


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


def _redact_url_credentials(match: re.Match[str]) -> str:
    scheme, user = match.group("scheme"), match.group("user")
    if match.group("password") is not None:
        return f"{scheme}{user}:{marker('password')}@"
    if user and scheme.lower() in ("http://", "https://"):  # a token as the user: https://<token>@host
        return f"{scheme}{marker('credentials')}@"
    return match.group(0)


_API_TOKEN_KINDS = {
    "github": "github token",
    "slack": "slack token",
    "stripe": "stripe key",
    "aws": "access key",
}


def _redact_api_token(match: re.Match[str]) -> str:
    start, end = match.span()
    glued = (start > 0 and _WORD_CHARACTER.match(match.string, start - 1)) or _WORD_CHARACTER.match(
        match.string, end
    )
    if glued:  # part of a longer word: not a token
        return match.group(0)
    return marker(_API_TOKEN_KINDS[match.lastgroup or "aws"])


def _replace_value(value: str, replacement: str) -> str:
    """`replacement` in place of `value`, inside the same quotes if it was quoted."""
    opening = _OPENING_QUOTE.match(value)
    if opening is None:
        return replacement
    quote = opening.group(0).removeprefix("b")
    closed = len(value) > len(opening.group(0)) and value.endswith(quote)
    return opening.group(0) + replacement + (quote if closed else "")


# -- windows --------------------------------------------------------------------------------
# What tokens, URLs and encoded secrets are made of: a run of these cut by a window's edge would
# show a piece no pattern recognises, so it is left out whole.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_.~:@%-]+")
_LAST_TOKEN_RUN = re.compile(r"(?<![A-Za-z0-9+/=_.~:@%-])[A-Za-z0-9+/=_.~:@%-]+\Z")


def _window_end(value: str, end: int) -> int:
    """`end`, or the start of the token it would cut."""
    if _TOKEN_RUN.match(value, end) is None:
        return end
    cut = _LAST_TOKEN_RUN.search(value, 0, end)
    return end if cut is None else cut.start()


def _window_start(value: str, start: int) -> int:
    """The start of the first whole line after `start` (a secret's name may lie before it);
    without one, `start`, or the end of the token it would cut."""
    newline = value.find("\n", start)
    if newline != -1:
        return newline + 1
    if start > 0 and _TOKEN_RUN.match(value, start - 1) is not None:
        cut = _TOKEN_RUN.match(value, start)
        if cut is not None:
            return cut.end()
    return start


def _without_key_tail(window: str) -> str:
    """The window with the end of a private key whose beginning was cut off replaced."""
    end = _PRIVATE_KEY_END.search(window)
    if end is None or "-----BEGIN " in window[: end.start()]:
        return window
    return marker("private key") + window[end.end() :]


# -- route templates ------------------------------------------------------------------------
_ROUTE_PARAMETER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")  # Starlette's


@dataclass(frozen=True, slots=True)
class _RoutePattern:
    pattern: re.Pattern[str]
    names: tuple[str, ...]  # of the groups p0, p1, ...
    slashes: int


@functools.lru_cache(maxsize=512)
def _route_pattern(route: str) -> _RoutePattern | None:
    """A route template compiled as Starlette compiles it, with the app's own convertors."""
    parts: list[str] = []
    names: list[str] = []
    position = 0
    for parameter in _ROUTE_PARAMETER.finditer(route):
        convertor = CONVERTOR_TYPES.get(parameter.group(2) or "str")
        regex = convertor.regex if convertor is not None else "[^/]+"
        parts += [re.escape(route[position : parameter.start()]), f"(?P<p{len(names)}>{regex})"]
        names.append(parameter.group(1))
        position = parameter.end()
    parts.append(re.escape(route[position:]))
    try:
        pattern = re.compile("".join(parts) + r"\Z")
    except re.error:
        return None
    return _RoutePattern(pattern, tuple(names), route.count("/"))


def _match_route(route: _RoutePattern, path: str) -> re.Match[str] | None:
    match = route.pattern.match(path)
    if match is None:  # behind a proxy's root path, the route is the path's last segments
        start = len(path)
        for _ in range(route.slashes):
            start = path.rfind("/", 0, start)
            if start <= 0:
                return None
        match = route.pattern.match(path, start)
    return match


# -- patterns -------------------------------------------------------------------------------
_PRIVATE_KEY_LINE = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PRIVATE_KEY = re.compile(rf"-----BEGIN {_PRIVATE_KEY_LINE}.*?(?:-----END {_PRIVATE_KEY_LINE}|\Z)", re.DOTALL)
_PRIVATE_KEY_END = re.compile(f"-----END {_PRIVATE_KEY_LINE}")
# Token and apikey are also words of prose ("token validation failed"): their credential has a digit.
_AUTH_SCHEMES = ("bearer", "basic", "digest", "negotiate", "token", "apikey")
_AUTH_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic|digest|negotiate|(?:token|apikey)(?=[ \t]+[A-Za-z._~+/=-]*[0-9]))"
    r"[ \t]+[A-Za-z0-9._~+/=-]{8,}"
)
# From the first "eyJ" (base64 of '{"') of a run of token characters, glued-on prefixes kept. Only
# a run's start can begin a match, and the lookahead, never retried, finds that "eyJ" once: if the
# first "eyJ" of a run starts no JWT, no later one in the run does either.
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])(?=(?P<head>[A-Za-z0-9_-]*?eyJ))(?P=head)"
    r"[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)
_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31}://)"
    r"(?P<user>[^/?#\s:@]*)(?::(?P<password>[^/\s@]+))?@"
)
_WEBHOOK = re.compile(
    r"(?i)(?P<path>open\.(?:larksuite\.com|feishu\.cn|larkoffice\.com)/open-apis/bot/v2/hook/"
    r"|hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/[0-9]{1,30}/)"
    r"[A-Za-z0-9_/-]+"
)
# Each pattern below begins with a character or a set of them, which the regex engine scans for
# quickly; what must come before that first character is checked after it.
_API_TOKEN = re.compile(
    r"(?P<github>gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{20,255})"
    r"|(?P<slack>xox[abposr]-[A-Za-z0-9-]{10,255})"
    r"|(?P<stripe>[sr]k_(?:live|test)_[A-Za-z0-9]{10,255})"
    r"|(?P<aws>A[KS]IA[0-9A-Z]{16})"
)
_WORD_CHARACTER = re.compile(r"[A-Za-z0-9_]")
# Issuer prefixes 2-6 (Mastercard, Amex, Visa, Discover...); keeps millisecond timestamps out.
_CARD_CANDIDATE = re.compile(r"[2-6](?<![\d.][2-6])(?:[ -]?\d){12,18}(?![\d.])")

_NAME = r"[A-Za-z0-9_.\-]"
# A name where a run of name characters starts, not with a digit, at most 128 long, quoted or not
# (the quote escaped, as in JSON inside a JSON string; the opening one is checked after a match);
# then `=`, `:` or `=>`, blanks around (not `==`, `::`).
_NAME_AND_SEPARATOR = re.compile(
    rf"""(?P<name>[A-Za-z_.\-](?<!{_NAME}{_NAME}){_NAME}{{0,127}})(?!{_NAME})(?P<quote>\\?["']|)"""
    r"""[ \t]*(?P<separator>=>|=(?!=)|:(?!:))[ \t]*"""
)
_QUOTED = r"""b?(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)"""
# A quoted value ends at its closing quote, or at the end of the line when it has none.
_QUOTED_VALUE = re.compile(_QUOTED + r"""|\\"(?:[^\\\n]|\\[^"\n])*(?:\\")?""")
_OPENING_QUOTE = re.compile(r"""b?["']|\\\"""")
_DELIMITERS = r"""&,;"'<>()\[\]{}\\"""
# Unquoted: a word after `=` (forms, query strings, logs); the rest of the line after `:` (headers,
# YAML), up to a delimiter either way.
_WORD_VALUE = re.compile(rf"[^\s{_DELIMITERS}]+")
_LINE_VALUE = re.compile(rf"[^\r\n{_DELIMITERS}]*[^\s{_DELIMITERS}]")
# ("name", "value"), ['name', 'value'], (b'name', b'value'): header lists, reprs, JSON arrays of pairs.
_QUOTED_PAIR = re.compile(
    rf"""(?P<head>[(\[][ \t]*b?(?P<quote>["'])(?P<name>{_NAME}{{1,128}})(?P=quote)[ \t]*,[ \t]*)"""
    rf"(?P<value>{_QUOTED})"
)
# <password>value</password>: an element whose content is text.
_XML_ELEMENT = re.compile(r"<(?P<name>[A-Za-z_][A-Za-z0-9_.:\-]{0,127})(?:[ \t\r\n][^<>]*)?>(?P<value>[^<]+)")
