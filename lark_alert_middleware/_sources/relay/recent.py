"""Payloads seen lately, parsed once: Alertmanager re-sends a group's body unchanged every
`repeat_interval`, and an Alertmanager or Grafana HA pair sends each body twice."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from .alerts import Notification

# Bodies remembered per endpoint, and the largest remembered: a few MiB at most in all.
RECENT_PAYLOADS = 64
RECENT_BODY_BYTES = 64 * 1024


class RecentPayloads:
    """`parse(body)`, remembering the notifications of the last RECENT_PAYLOADS bodies.

    Used on the event loop that serves requests, and only there (no lock). A body that does
    not parse raises as `parse` does, and is not remembered.
    """

    def __init__(self, parse: Callable[[bytes], Notification]) -> None:
        self._parse = parse
        self._seen: OrderedDict[bytes, Notification] = OrderedDict()

    def __call__(self, body: bytes) -> Notification:
        notification = self._seen.get(body)
        if notification is not None:
            self._seen.move_to_end(body)
            return notification
        notification = self._parse(body)
        if len(body) <= RECENT_BODY_BYTES:
            self._seen[body] = notification
            if len(self._seen) > RECENT_PAYLOADS:
                self._seen.popitem(last=False)
        return notification
