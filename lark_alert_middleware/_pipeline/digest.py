"""Errors that did not fit the delivery queue, folded into one summary card instead of a flood.

Thread-safe (the request path adds to it when the hand-off itself overflows) and bounded:
past `max_kinds` distinct fingerprints, further errors are only counted. Server errors and
exceptions come first: they are listed before client errors, and a client error gives up its
place in the list to a server error that finds the list full.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .._records import DigestLine, DigestSummary, ErrorEvent

# How much of a path a digest keeps as its example; a client chooses the path.
EXAMPLE_PATH_CHARACTERS = 200


@dataclass(slots=True)
class _Kind:
    status_code: int
    count: int
    example_path: str
    route: str | None
    is_error: bool


class Digest:
    def __init__(self, max_kinds: int = 500) -> None:
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        self._warning_kinds = 0
        self._other = 0
        self._total = 0
        self._units = 0
        self._has_errors = False
        self._started_at: float | None = None

    def add(self, fingerprint: str, event: ErrorEvent) -> bool:
        """Fold one error in (one unit of work, finished when the digest is sent); True if it was empty."""
        is_error = event.is_error
        with self._lock:
            was_empty = self._started_at is None
            if was_empty:
                self._started_at = time.time()
            self._total += 1
            self._units += 1
            self._has_errors = self._has_errors or is_error
            kind = self._kinds.get(fingerprint)
            if kind is not None:
                kind.count += 1
            elif len(self._kinds) < self._max_kinds or (is_error and self._drop_a_warning()):
                example_path = (event.path or event.subject or "")[:EXAMPLE_PATH_CHARACTERS]
                self._kinds[fingerprint] = _Kind(event.status_code, 1, example_path, event.route, is_error)
                self._warning_kinds += not is_error
            else:
                self._other += 1
            return was_empty

    def _drop_a_warning(self) -> bool:
        """Make room for a server error: the least frequent client error is only counted from now on."""
        if not self._warning_kinds:
            return False
        fingerprint, kind = min(
            ((fingerprint, kind) for fingerprint, kind in self._kinds.items() if not kind.is_error),
            key=lambda item: item[1].count,
        )
        del self._kinds[fingerprint]
        self._warning_kinds -= 1
        self._other += kind.count
        return True

    @property
    def started_at(self) -> float | None:
        return self._started_at

    def __bool__(self) -> bool:
        return self._units > 0

    def take(self) -> DigestSummary | None:
        """Everything folded in so far (server errors first, then the most frequent); starts empty again."""
        with self._lock:
            if not self._units or self._started_at is None:
                return None
            lines = tuple(
                sorted(
                    (
                        DigestLine(
                            fp, kind.status_code, kind.count, kind.example_path, kind.route, kind.is_error
                        )
                        for fp, kind in self._kinds.items()
                    ),
                    key=lambda line: (not line.is_error, -line.count, line.fingerprint),
                )
            )
            summary = DigestSummary(
                self._started_at, time.time(), self._total, lines, self._other, self._units, self._has_errors
            )
            self._kinds, self._other, self._total, self._units = {}, 0, 0, 0
            self._warning_kinds, self._has_errors, self._started_at = 0, False, None
            return summary

    def forget_after_fork(self) -> None:
        """In a forked child: what was folded in is the parent's to send; no lock is held here."""
        self._lock = threading.Lock()
        self._kinds, self._other, self._total, self._units = {}, 0, 0, 0
        self._warning_kinds, self._has_errors, self._started_at = 0, False, None
