"""JSON log lines name the trace and span they were written in, beside the request id."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace

from apps.core.logging import JSONFormatter, RequestIDFilter, request_id_var

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def _line(message: str) -> dict:
    record = logging.LogRecord("autoglue.test", logging.INFO, __file__, 1, message, (), None)
    RequestIDFilter().filter(record)
    return json.loads(JSONFormatter().format(record))


def test_a_line_written_inside_a_span_carries_its_trace_and_span_ids_beside_the_request_id():
    context = trace.SpanContext(TRACE_ID, SPAN_ID, is_remote=False)
    token = request_id_var.set("req-1")
    try:
        with trace.use_span(trace.NonRecordingSpan(context)):
            line = _line("inside")
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-1"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == "00f067aa0ba902b7"


def test_a_line_written_outside_any_span_has_no_trace_fields():
    line = _line("outside")
    assert "trace_id" not in line and "span_id" not in line
