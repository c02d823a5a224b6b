"""Values a source got from code (log `extra`, `capture_*` context, messages) as text: bounded,
and never raising, whatever the object (a `__repr__` or `__str__` that raises, a megabyte string).

They are cut here already, where they are captured, because an event may wait in memory for its
turn: the card shows far less of each (and redacts, escapes and cuts it again when it renders).
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Iterable

from .._records import Pairs, as_text

# Characters kept of a message: what a card can redact and show of it (`Redactor.excerpt`).
MESSAGE_CHARACTERS = 16 * 1024
# Characters kept of a subject (the title: one line) and of each detail's name and value.
SUBJECT_CHARACTERS = 300
NAME_CHARACTERS = 100
VALUE_CHARACTERS = 1000
# Details kept: the card shows 25.
MAX_DETAILS = 30


class _BoundedRepr(reprlib.Repr):
    """`reprlib`'s repr (containers summarised, a raising `__repr__` shown as the object's type),
    with more room for each value than its defaults."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = VALUE_CHARACTERS
        self.maxother = VALUE_CHARACTERS
        self.maxlong = 100


_repr = _BoundedRepr()


def shown_text(value: object, limit: int = VALUE_CHARACTERS) -> str:
    """A value as text: a string as it is, anything else by its bounded repr; cut to `limit`."""
    try:
        # Through str itself: a subclass's own slicing is code of the caller's too.
        text = str.__getitem__(value, slice(limit)) if isinstance(value, str) else _repr.repr(value)[:limit]
    except Exception:
        text = f"<{_type_name(value)} object: repr() failed>"
    return as_text(text)


def str_of(value: object) -> str:
    """`str(value)`, or a description of the object when its `__str__` fails."""
    try:
        return str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:
        return f"<{_type_name(value)} object: str() failed>"


def details_of(items: Iterable[tuple[object, object]]) -> Pairs:
    """Named values as a card's fields: the first MAX_DETAILS, names and values as bounded text."""
    details: list[tuple[str, str]] = []
    for name, value in items:
        if len(details) == MAX_DETAILS:
            break
        details.append((shown_text(name, NAME_CHARACTERS), shown_text(value)))
    return tuple(details)


def subject_of(text: str) -> str:
    """What failed, in a title's room: the first line of a message."""
    first_line = text.lstrip()[: SUBJECT_CHARACTERS * 2].split("\n", 1)[0].strip()
    return first_line[:SUBJECT_CHARACTERS] or "(empty message)"


def level_of(level: int | str) -> str:
    """A logging level (`logging.ERROR`, `"warning"`) as one of the card's levels."""
    if isinstance(level, str):
        name = level.strip().upper()
        number = logging.getLevelName(name)
        level = number if isinstance(number, int) else logging.ERROR
    if level >= logging.CRITICAL:
        return "critical"
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    return "info"


def _type_name(value: object) -> str:
    try:
        return type(value).__qualname__
    except Exception:
        return "unknown"
