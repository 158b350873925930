"""What traces may carry and which are kept: fast checks with an in-memory exporter.

The live chain (gunicorn, Celery, sshd, an OTLP receiver) is in tests/test_traces_live.py;
these run the same filters, sampler and ASGI wrapper in this process, on a tracer provider of
their own (the process's global provider is left alone).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from django.db import IntegrityError, connection, transaction
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from apps.accounts.models import User
from autoglue import tracing
from autoglue.tracing_filters import SanitizingExporter, sampler

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler("web"))
    provider.add_span_processor(SimpleSpanProcessor(SanitizingExporter(memory)))
    yield provider, memory
    provider.shutdown()


def _serve(app, headers: list[tuple[bytes, bytes]], method: str = "GET") -> None:
    """One HTTP request through an ASGI application."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/api/v1/clusters",
        "raw_path": b"/api/v1/clusters",
        "query_string": b"",
        "headers": [(b"host", b"autoglue.test"), *headers],
        "client": ("198.51.100.7", 51234),
        "server": ("127.0.0.1", 8080),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200


async def _ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _web(provider: TracerProvider):
    return tracing.InboundContextStripped(
        OpenTelemetryMiddleware(
            _ok,
            tracer_provider=provider,
            default_span_details=tracing._method_only,
            exclude_spans=["receive", "send"],
        )
    )


def _server_span(memory: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in memory.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    return span


def test_a_clients_traceparent_neither_chooses_the_trace_nor_switches_sampling_off(exported):
    provider, memory = exported
    # Sampled flag 00: were it trusted, the parent-based sampler would drop the request.
    _serve(_web(provider), [(b"traceparent", f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-00".encode())])

    span = _server_span(memory)
    assert span.parent is None
    assert format(span.context.trace_id, "032x") != CLIENT_TRACE_ID


def test_baggage_and_tracestate_a_client_sends_never_reach_the_application():
    seen: list[list] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["headers"])
        await _ok(scope, receive, send)

    headers = [(b"baggage", b"user=alice"), (b"tracestate", b"x=1"), (b"accept", b"*/*")]
    _serve(tracing.InboundContextStripped(app), headers)

    assert seen == [[(b"host", b"autoglue.test"), (b"accept", b"*/*")]]


def test_inbound_context_is_trusted_only_when_the_operator_says_so(monkeypatch):
    monkeypatch.delenv("OTEL_TRUST_INBOUND_CONTEXT", raising=False)
    assert tracing.trust_inbound_context() is False
    monkeypatch.setenv("OTEL_TRUST_INBOUND_CONTEXT", "true")
    assert tracing.trust_inbound_context() is True


def test_a_request_span_holds_neither_the_clients_address_nor_its_user_agent(exported, monkeypatch):
    provider, memory = exported
    _serve(_web(provider), [(b"user-agent", b"Mozilla/5.0 (alice's laptop)")])

    attributes = dict(_server_span(memory).attributes or {})
    assert "198.51.100.7" not in attributes.values()
    assert not [v for v in attributes.values() if "Mozilla" in str(v)]
    assert attributes.get("http.method") == "GET"


def test_an_operator_can_opt_in_to_the_clients_address_on_request_spans(monkeypatch):
    monkeypatch.setenv("OTEL_RECORD_CLIENT_DETAILS", "true")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SanitizingExporter(memory)))
    _serve(_web(provider), [])
    assert "198.51.100.7" in dict(_server_span(memory).attributes or {}).values()


def test_a_made_up_http_method_does_not_name_a_span(exported):
    provider, memory = exported
    _serve(_web(provider), [], method="DROPTABLEUSERS")
    assert _server_span(memory).name == "_OTHER"
    assert tracing._method_only({"method": "post"}) == ("POST", {})


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_key_insert_leaves_only_the_exceptions_type_on_its_spans(exported):
    provider, memory = exported
    User.objects.create_user("dup@example.test")
    connection.ensure_connection()
    PsycopgInstrumentor.instrument_connection(connection.connection, tracer_provider=provider)
    try:
        with (
            provider.get_tracer("test").start_as_current_span("POST api/v1/users"),
            pytest.raises(IntegrityError),
            transaction.atomic(),
        ):
            User.objects.create_user("dup@example.test")
    finally:
        PsycopgInstrumentor.uninstrument_connection(connection.connection)

    spans = memory.get_finished_spans()
    failed = [s for s in spans if s.status.status_code == StatusCode.ERROR]
    assert failed, [s.name for s in spans]
    for span in spans:
        assert span.status.description is None
        assert "dup@example.test" not in str(span.attributes)
        for event in span.events:
            assert dict(event.attributes or {}).keys() <= {"exception.type"}
    assert any(
        e.attributes and e.attributes.get("exception.type", "").endswith("UniqueViolation")
        for s in spans
        for e in s.events
    )


def test_a_failed_job_span_has_an_error_status_without_the_exceptions_text(monkeypatch):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))  # unfiltered: job_span itself
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(trace, "get_tracer", provider.get_tracer)

    with pytest.raises(RuntimeError), tracing.job_span(kind="backup", traceparent=""):
        raise RuntimeError("password=hunter2")

    (span,) = memory.get_finished_spans()
    assert "hunter2" not in str(span.status.description) and not span.events


def test_a_run_queued_in_an_unsampled_span_stores_no_trace_context(monkeypatch):
    provider = TracerProvider()
    monkeypatch.setattr(tracing, "_provider", provider)
    unsampled = trace.SpanContext(int(CLIENT_TRACE_ID, 16), 0xF067AA0BA902B7, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(unsampled)):
        assert tracing.current_traceparent() == ""
    with provider.get_tracer("test").start_as_current_span("POST"):
        assert tracing.current_traceparent().startswith("00-")


def test_what_beat_publishes_is_not_traced_nor_the_tasks_it_starts_in_a_worker():
    beat_memory, worker_memory = InMemorySpanExporter(), InMemorySpanExporter()
    beat, worker = (
        TracerProvider(sampler=sampler("beat")),
        TracerProvider(sampler=sampler("worker")),
    )
    beat.add_span_processor(SimpleSpanProcessor(beat_memory))
    worker.add_span_processor(SimpleSpanProcessor(worker_memory))

    with beat.get_tracer("celery").start_as_current_span(
        "apply_async/jobs.reap", kind=trace.SpanKind.PRODUCER
    ) as published:
        carried = published.get_span_context()
    delivered = trace.set_span_in_context(trace.NonRecordingSpan(carried))
    worker.get_tracer("celery").start_span(
        "run/jobs.reap", context=delivered, kind=trace.SpanKind.CONSUMER
    ).end()
    # The same publish from a request handled in a worker is traced.
    worker.get_tracer("celery").start_span(
        "apply_async/jobs.run", kind=trace.SpanKind.PRODUCER
    ).end()

    assert beat_memory.get_finished_spans() == ()
    assert [s.name for s in worker_memory.get_finished_spans()] == ["apply_async/jobs.run"]
    assert "ParentBased" in sampler("beat").get_description()


def test_a_collector_that_is_down_does_not_write_a_warning_per_dropped_span(caplog):
    # The logging levels are the settings' own (Django applied LOGGING at start).
    released = threading.Event()

    class Stuck(InMemorySpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            released.wait(10)  # a collector that does not answer
            return super().export(spans)

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(Stuck(), max_queue_size=2, max_export_batch_size=1)
    )
    tracer = provider.get_tracer("test")
    for _ in range(50):
        tracer.start_span("step").end()
    released.set()
    provider.shutdown()

    assert not [r for r in caplog.records if "Queue full" in r.getMessage()]


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_exactly_when_an_endpoint_is_set_and_not_switched_off(
    monkeypatch, variables, on
):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing.configured() is on


def test_endpoint_and_headers_can_come_from_mounted_secret_files(monkeypatch, tmp_path):
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "endpoint").write_text("https://collector.example:4318/\n")
    (tmp_path / "headers").write_text("authorization=Bearer%20s3cret\n")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT_FILE", str(tmp_path / "endpoint"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS_FILE", str(tmp_path / "headers"))

    assert tracing.configured()
    assert tracing._traces_endpoint() == "https://collector.example:4318/v1/traces"
    assert tracing._exporter_headers() == {"authorization": "Bearer s3cret"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces.example/in")
    assert tracing._traces_endpoint() == "https://traces.example/in"
