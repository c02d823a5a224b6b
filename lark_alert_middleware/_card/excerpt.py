"""Captured bytes into a faithful, redacted, printable excerpt, whatever the bytes are."""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass
from json import dumps as json_dumps
from json import loads as json_loads
from urllib.parse import parse_qsl

from .._records import CapturedBody
from .redact import WINDOW, Redactor

MAX_DECOMPRESSED_BYTES = 64 * 1024
MAX_JSON_DEPTH = 12

_BINARY_TYPES = re.compile(
    r"^(image|audio|video|font)/|^application/(octet-stream|pdf|zip|gzip|x-tar|x-protobuf|"
    r"protobuf|grpc|msgpack|x-msgpack|vnd\.ms-|vnd\.openxmlformats|cbor|wasm)"
)
# C0/C1 controls except tab and newline, bidi controls, line/paragraph separators, BOM, and lone
# surrogates (a JSON string may hold one: "\\ud800"), which no UTF-8 encoder accepts.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
# Codecs Python has that are no body's character set: they raise whatever the bytes, take
# quadratic time (punycode), or turn escapes in the text into characters.
_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})


@dataclass(frozen=True, slots=True)
class BodyExcerpt:
    """What a card shows of a body: `kind` is empty, json, form, multipart, text or binary."""

    kind: str
    text: str
    size: int
    content_type: str | None
    note: str

    @property
    def is_empty(self) -> bool:
        return self.kind == "empty"


def printable(text: str) -> str:
    """Show control, bidi and separator characters and lone surrogates as `\\uXXXX`: they cannot
    reorder or hide text, nor make the card's UTF-8 fail."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text.replace("\r\n", "\n"))


def excerpt_body(body: CapturedBody, redactor: Redactor) -> BodyExcerpt:
    if body.size == 0:
        return BodyExcerpt("empty", "", 0, body.content_type, "")
    content_type = (body.content_type or "").split(";")[0].strip().lower()
    notes: list[str] = []
    if body.truncated:
        notes.append(f"first {len(body.data):,} of {body.size:,} bytes")
    data, decoded_note = _decompress(body.data, (body.content_encoding or "").strip().lower())
    if decoded_note:
        notes.append(decoded_note)
    if data is None or _BINARY_TYPES.match(content_type):
        return _binary(body, notes)
    text, text_note = _decode(data, body.content_type or "")
    if text is None:
        return _binary(body, notes)
    if text_note:
        notes.append(text_note)
    complete = not body.truncated
    kind, shown = _structured(text, content_type, body.content_type or "", complete, redactor)
    return BodyExcerpt(kind, printable(shown), body.size, body.content_type, "; ".join(notes))


def _binary(body: CapturedBody, notes: list[str]) -> BodyExcerpt:
    described = body.content_type or "unknown type"
    if body.content_encoding:
        described += f", {body.content_encoding}-encoded"
    return BodyExcerpt(
        "binary", f"binary, {body.size:,} bytes, {described}", body.size, body.content_type, "; ".join(notes)
    )


def _decompress(data: bytes, encoding: str) -> tuple[bytes | None, str]:
    if encoding in ("", "identity"):
        return data, ""
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        try:
            # A cut-off stream still yields its beginning; max_length guards against bombs.
            return zlib.decompressobj(wbits).decompress(data, MAX_DECOMPRESSED_BYTES), f"{encoding}-decoded"
        except zlib.error:
            if encoding == "deflate":
                try:
                    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(
                        data, MAX_DECOMPRESSED_BYTES
                    ), "deflate-decoded"
                except zlib.error:
                    pass
    return None, ""


def _decode(data: bytes, content_type: str) -> tuple[str | None, str]:
    charset = _charset(content_type)
    charset_note = ""
    if charset and charset not in ("utf-8", "utf8"):
        text = _decode_charset(data, charset)
        if text is not None:
            return text, ""
        charset_note = f"charset {charset} not decodable, shown as UTF-8"
    text, note = _decode_utf8(data)
    return text, "; ".join(filter(None, (charset_note, note)))


def _decode_charset(data: bytes, charset: str) -> str | None:
    try:
        if codecs.lookup(charset).name in _NOT_CHARSETS:
            return None
        return data.decode(charset, errors="replace")
    except Exception:  # codecs are plug-ins: any of them may raise anything, on any bytes
        return None


def _decode_utf8(data: bytes) -> tuple[str | None, str]:
    if _looks_binary(data):
        return None, ""
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as error:
        if error.start >= len(data) - 3 and error.reason == "unexpected end of data":
            return data[: error.start].decode("utf-8", errors="replace"), ""
        return data.decode("utf-8", errors="replace"), "invalid UTF-8 shown as \ufffd"


def _charset(content_type: str) -> str:
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else ""


def _looks_binary(data: bytes) -> bool:
    sample = data[:1024]
    if b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    return controls > len(sample) // 10


def _structured(
    text: str, content_type: str, full_content_type: str, complete: bool, redactor: Redactor
) -> tuple[str, str]:
    stripped = text.lstrip()
    if complete and ("json" in content_type or stripped[:1] in ("{", "[")):
        try:
            document = json_loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            shown = redactor.json(document, max_depth=MAX_JSON_DEPTH)
            return "json", json_dumps(shown, indent=2, ensure_ascii=False)
    if content_type == "application/x-www-form-urlencoded":
        # A card shows far less than WINDOW characters of a form; what is past them is not parsed.
        fields = parse_qsl(text[:WINDOW], keep_blank_values=True)
        return "form", "\n".join(f"{name}={value}" for name, value in redactor.pairs(fields))
    if content_type == "multipart/form-data":
        return "multipart", _multipart(text, full_content_type, redactor)
    return "text", redactor.excerpt(text)


_CHARSET = re.compile(r'(?i)charset\s*=\s*"?([A-Za-z0-9._:-]{1,40})')
# A part's name and filename, quoted or not, in any case; the "name" in "filename" is not a name.
_PART_NAME = re.compile(r'(?i)(?<![\w*-])name\s*=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|([^\s;"]+))')
_PART_FILENAME = re.compile(r'(?i)(?<![\w-])filename\*?\s*=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|([^\s;"]+))')


def _parameter(pattern: re.Pattern[str], head: str) -> str | None:
    match = pattern.search(head)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def _multipart(text: str, content_type: str, redactor: Redactor) -> str:
    boundary_match = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary_match is None:
        return redactor.excerpt(text)
    lines: list[str] = []
    shown = 0
    for part in text.split("--" + boundary_match.group(1))[1:]:
        if part.startswith("--"):
            break
        if shown > WINDOW:  # far more than a card shows
            lines.append("…")
            break
        head, _, value = part.lstrip("\r\n").partition("\r\n\r\n")
        name = redactor.text(_parameter(_PART_NAME, head) or "?")
        filename = _parameter(_PART_FILENAME, head)
        value = value.removesuffix("\r\n")
        if filename is not None:
            size = len(value.encode("utf-8", "surrogatepass"))  # a UTF-7 part can hold lone surrogates
            lines.append(f"{name}: <file {filename!r}, {size:,} bytes>")
        else:
            lines.append(f"{name}={redactor.pair(name, value)}")
        shown += len(lines[-1])
    return "\n".join(lines)
