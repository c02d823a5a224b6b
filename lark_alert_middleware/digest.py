"""Errors that did not fit the delivery queue, folded into one summary card instead of a flood.

Thread-safe (the request path adds to it when the hand-off itself overflows) and bounded:
past `max_kinds` distinct fingerprints, further errors are only counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DigestLine:
    fingerprint: str
    status_code: int
    count: int
    example_path: str


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """What one digest card reports: `total` errors between `started_at` and `ended_at`."""

    started_at: float
    ended_at: float
    total: int
    lines: tuple[DigestLine, ...]
    uncounted_kinds_total: int
    units: int

    @property
    def has_server_errors(self) -> bool:
        return any(line.status_code >= 500 for line in self.lines)


@dataclass(slots=True)
class _Kind:
    status_code: int
    count: int
    example_path: str


class Digest:
    def __init__(self, max_kinds: int = 500) -> None:
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        self._other = 0
        self._total = 0
        self._units = 0
        self._started_at: float | None = None

    def add(self, fingerprint: str, status_code: int, path: str) -> bool:
        """Fold one error in (one unit of work, finished when the digest is sent); True if it was empty."""
        with self._lock:
            was_empty = self._started_at is None
            if was_empty:
                self._started_at = time.time()
            self._total += 1
            self._units += 1
            kind = self._kinds.get(fingerprint)
            if kind is not None:
                kind.count += 1
            elif len(self._kinds) < self._max_kinds:
                self._kinds[fingerprint] = _Kind(status_code, 1, path)
            else:
                self._other += 1
            return was_empty

    @property
    def started_at(self) -> float | None:
        return self._started_at

    def __bool__(self) -> bool:
        return self._units > 0

    def take(self) -> DigestSummary | None:
        """Everything folded in so far, most frequent first; the digest starts empty again."""
        with self._lock:
            if not self._units or self._started_at is None:
                return None
            lines = tuple(
                sorted(
                    (
                        DigestLine(fp, kind.status_code, kind.count, kind.example_path)
                        for fp, kind in self._kinds.items()
                    ),
                    key=lambda line: (-line.count, line.fingerprint),
                )
            )
            summary = DigestSummary(
                self._started_at, time.time(), self._total, lines, self._other, self._units
            )
            self._kinds, self._other, self._total, self._units, self._started_at = {}, 0, 0, 0, None
            return summary
