"""Which trace a failing request belongs to."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from lark_alert_middleware._sources.tracing import current_trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_active_opentelemetry_span_wins() -> None:
    context = SpanContext(int(TRACE, 16), 0x00F067AA0BA902B7, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        assert current_trace_id((("traceparent", f"00-{'1' * 32}-00f067aa0ba902b7-01"),)) == TRACE


def test_the_traceparent_header_is_used_without_a_span() -> None:
    assert current_trace_id((("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01"),)) == TRACE


def test_malformed_or_empty_trace_ids_are_ignored() -> None:
    assert current_trace_id((("traceparent", "00-nothex-00f067aa0ba902b7-01"),)) is None
    assert current_trace_id((("traceparent", f"00-{'0' * 32}-00f067aa0ba902b7-01"),)) is None
    assert current_trace_id(()) is None
