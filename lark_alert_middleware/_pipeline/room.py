"""Making room in a bounded table of errors: the one eviction rule the pipeline's tables share."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


def make_room(
    entries: dict[Key, Value],
    capacity: int,
    is_spent: Callable[[Value], bool],
    drop: Callable[[Key], None],
) -> None:
    """Drop the spent entries, then the oldest, until `entries` is down to 90% of `capacity`.

    Down to 90% at once, so that a storm of distinct errors sweeps once per many inserts.
    `drop(key)` removes one entry from `entries` (and does whatever else dropping it means).
    """
    for key in [key for key, value in entries.items() if is_spent(value)]:
        drop(key)
    excess = len(entries) - capacity * 9 // 10
    for key in list(itertools.islice(entries, max(0, excess))):
        drop(key)
