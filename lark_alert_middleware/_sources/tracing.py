"""The trace a failing request belongs to: from an active OpenTelemetry span, else its traceparent."""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_NO_TRACE = "0" * 32

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # OpenTelemetry is optional
    _otel_trace = None  # type: ignore[assignment]


def current_trace_id(headers: tuple[tuple[str, str], ...]) -> str | None:
    """32 hex digits, or None when the request is not part of a trace."""
    if _otel_trace is not None:
        context = _otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            return format(context.trace_id, "032x")
    for name, value in headers:
        if name == "traceparent":
            match = _TRACEPARENT.match(value.strip().lower())
            if match and match.group(1) != _NO_TRACE:
                return match.group(1)
    return None
