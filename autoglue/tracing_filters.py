"""What an exported span may carry, and which spans are sampled (loaded only with tracing on).

`SanitizingExporter` wraps the OTLP exporter and rewrites every span on its way out:
- an exception event keeps only `exception.type`: the message and stack trace can quote a
  row's values (psycopg's `DETAIL: Key (...)=(...)`), a peer's bytes or a request's data, and
  instrumentations we do not control (psycopg, Django, botocore, Celery) record them;
- a status keeps its code, never its description (botocore and the DB-API instrumentation
  put `str(error)` there);
- on the web's spans, the client's address, port and user agent are dropped (personal data)
  unless `OTEL_RECORD_CLIENT_DETAILS=true`.

`AutoglueSampler` sits in front of the sampler `OTEL_TRACES_SAMPLER` configures and drops the
spans that would otherwise be a trace per call, all day: a client span with no parent (broker
polls, heartbeats, probe checks) and, in beat, every message it publishes (the reaper every
few seconds, the sweeps), so the periodic tasks' worker spans follow the unsampled parent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, sampling
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

# Server-side attributes that describe the person behind a request (old and new conventions).
CLIENT_DETAIL_ATTRIBUTES = frozenset(
    {
        "http.user_agent",
        "user_agent.original",
        "user_agent.synthetic.type",
        "http.client_ip",
        "client.address",
        "client.port",
        "net.peer.ip",
        "net.peer.port",
        "net.sock.peer.addr",
        "net.sock.peer.port",
        "network.peer.address",
        "network.peer.port",
    }
)
_WEB_SCOPES = ("opentelemetry.instrumentation.asgi", "opentelemetry.instrumentation.django")


def record_client_details() -> bool:
    """True when the operator opted in to client address/port/user agent on web spans."""
    return os.environ.get("OTEL_RECORD_CLIENT_DETAILS", "").strip().lower() == "true"


def _is_web_span(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    return span.kind == trace.SpanKind.SERVER or scope.startswith(_WEB_SCOPES)


def sanitized(span: ReadableSpan, *, keep_client_details: bool = False) -> ReadableSpan:
    """A copy of `span` without exception messages, stack traces, status descriptions and
    (unless kept) the client's details."""
    attributes = dict(span.attributes or {})
    if not keep_client_details and _is_web_span(span):
        for name in CLIENT_DETAIL_ATTRIBUTES & attributes.keys():
            del attributes[name]
    events = [
        Event(
            "exception",
            {"exception.type": (event.attributes or {}).get("exception.type", "")},
            event.timestamp,
        )
        if event.name == "exception"
        else event
        for event in span.events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class SanitizingExporter(SpanExporter):
    """An exporter that hands `sanitized` spans to the real one."""

    def __init__(self, delegate: SpanExporter) -> None:
        self.delegate = delegate
        self.keep_client_details = record_client_details()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        keep = self.keep_client_details
        return self.delegate.export([sanitized(s, keep_client_details=keep) for s in spans])

    def shutdown(self) -> None:
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.delegate.force_flush(timeout_millis)


class AutoglueSampler(sampling.Sampler):
    """The configured sampler, except for the root spans that would be one trace per periodic
    call (module docstring)."""

    def __init__(self, delegate: sampling.Sampler, role: str) -> None:
        self.delegate = delegate
        self.role = role

    def should_sample(  # type: ignore[no-untyped-def]
        self, parent_context, trace_id, name, kind=None, attributes=None, *args, **kwargs
    ) -> sampling.SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and (
            kind == trace.SpanKind.CLIENT
            # Everything beat publishes is periodic; its tasks' spans in the worker have
            # this unsampled span as parent, so the parent-based sampler drops them too.
            or (kind == trace.SpanKind.PRODUCER and self.role == "beat")
        ):
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, *args, **kwargs
        )

    def get_description(self) -> str:
        return f"AutoglueSampler{{{self.delegate.get_description()}}}"


def sampler(role: str) -> AutoglueSampler:
    """`AutoglueSampler` around the SDK's own reading of OTEL_TRACES_SAMPLER(_ARG)."""
    return AutoglueSampler(sampling._get_from_env_or_default(), role)
