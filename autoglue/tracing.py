"""OpenTelemetry traces, on only when an OTLP endpoint is set (docs/observability.md).

Without the variable nothing here imports the SDK or an instrumentation: no provider, no span
processor thread, no middleware; `span()` and `job_span()` are empty context managers and
`current_traceparent()` answers "".

With it, each process sets the SDK up once, *after* it forks, because the batch span
processor's export thread does not survive a fork:
- web: gunicorn's `post_fork` hook (`autoglue/gunicorn_conf.py`), before the worker imports
  `autoglue.asgi`, so Django's instrumentation middleware is in place when Django builds its
  middleware chain; `autoglue.asgi` then wraps the application in the ASGI middleware;
- worker: Celery's `worker_process_init` in each prefork child; for a pool without child
  processes (the `ssh` queue's threads pool), `worker_init` in the worker itself;
- beat: Celery's `beat_init`.
Spans still buffered are flushed when a worker process or a worker stops (a prefork child
leaves through `os._exit`, which runs no `atexit` handler).

The standard variables are read by the SDK: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
win; without a service name the process calls itself `autoglue-<role>`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

TRACER_NAME = "autoglue"
# Probes and scrapes would be most of the traces and tell nothing.
EXCLUDED_URLS = "/api/v1/healthz,/api/v1/readyz,/metrics"
# Attributes the HTTP instrumentations fill with the full URL; the query is dropped from them
# (an OAuth callback carries its authorization code there).
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
_SERVER_SPAN_KEY = "autoglue.otel_server_span"

_provider: Any = None
_role = ""


def _env(name: str) -> str:
    """A variable from the process environment, `NAME_FILE` honoured (autoglue.env)."""
    from autoglue.env import FileBackedEnviron

    return FileBackedEnviron().get(name, "").strip()


def configured() -> bool:
    """True when the environment asks for traces: an OTLP endpoint (the general one or the
    traces one) is set, and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`
    says otherwise."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(_traces_endpoint())


def _traces_endpoint() -> str:
    """Where spans go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
    `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces` (the OTLP exporter's own rule)."""
    own = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if own:
        return own
    base = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else ""


def _exporter_headers() -> dict[str, str] | None:
    """The exporter's headers (`OTEL_EXPORTER_OTLP_TRACES_HEADERS` wins), read here so that a
    `_FILE` secret works; None lets the exporter fall back to its defaults."""
    from opentelemetry.util.re import parse_env_headers

    value = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or _env("OTEL_EXPORTER_OTLP_HEADERS")
    return dict(parse_env_headers(value, liberal=True)) if value else None


def trust_inbound_context() -> bool:
    """True when the operator opted in to continue traces that a client's `traceparent` starts."""
    return os.environ.get("OTEL_TRUST_INBOUND_CONTEXT", "").strip().lower() == "true"


def enabled() -> bool:
    """True once this process has set tracing up."""
    return _provider is not None


def setup(role: str) -> bool:
    """Install the SDK, the OTLP/HTTP exporter and the instrumentations in this process, once.
    Does nothing (and returns False) unless `configured()`."""
    global _provider, _role
    if _provider is not None or not configured():
        return _provider is not None
    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from autoglue.tracing_filters import SanitizingExporter, sampler

    resource = Resource.create({"autoglue.role": role})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"autoglue-{role}"}))
    # Endpoint and headers are passed in (their `_FILE` twins resolved); the exporter reads
    # the timeout and compression from the standard OTEL_EXPORTER_OTLP_* variables itself.
    exporter = OTLPSpanExporter(endpoint=_traces_endpoint(), headers=_exporter_headers())
    provider = TracerProvider(resource=resource, sampler=sampler(role))
    provider.add_span_processor(BatchSpanProcessor(SanitizingExporter(exporter)))
    trace.set_tracer_provider(provider)
    # W3C trace context only: baggage is a client's free text travelling to every process.
    if not os.environ.get("OTEL_PROPAGATORS", "").strip():
        propagate.set_global_textmap(TraceContextTextMapPropagator())
    _provider, _role = provider, role
    _instrument(role)
    return True


def _instrument(role: str) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    CeleryInstrumentor().instrument()
    # Statements only, never their parameters (the default; said here because it matters).
    PsycopgInstrumentor().instrument(capture_parameters=False)
    RedisInstrumentor().instrument()
    BotocoreInstrumentor().instrument()
    if role == "web":
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(
            excluded_urls=EXCLUDED_URLS,
            request_hook=_django_request_hook,
            response_hook=_django_response_hook,
        )


def shutdown() -> None:
    """Export what is buffered and stop the span processor (a stopping process)."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def force_flush() -> None:
    """Export what is buffered now."""
    if _provider is not None:
        _provider.force_flush()


# --- The web role -------------------------------------------------------------------------


def sanitize_method(method: str) -> str:
    """The HTTP method as span names may carry it (`_OTHER` for one that is not standard)."""
    from opentelemetry.util.http import sanitize_method as otel_sanitize_method

    return otel_sanitize_method(method) or ""


def wrap_asgi(application: Any) -> Any:
    """The ASGI application inside OpenTelemetry's ASGI middleware when tracing is on (the
    server span then covers a streamed response to its end, which Django's middleware alone
    does not); the application itself otherwise."""
    if not enabled():
        return application
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    traced = OpenTelemetryMiddleware(
        application,
        excluded_urls=EXCLUDED_URLS,
        # The path holds object ids: the span is named by the method until Django has
        # resolved the route (`_django_response_hook`).
        default_span_details=_method_only,
        server_request_hook=_asgi_request_hook,
        # One span per body chunk of a live log stream is noise.
        exclude_spans=["receive", "send"],
    )
    return traced if trust_inbound_context() else InboundContextStripped(traced)


# Headers by which a client would choose our trace ids, sampling decision and baggage.
INBOUND_CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class InboundContextStripped:
    """ASGI wrapper that removes the trace context headers a client sent before the tracing
    middleware reads them: every request starts a trace of our own, sampled by our sampler
    (unless `OTEL_TRUST_INBOUND_CONTEXT=true`, for a trusted proxy or mesh in front)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            headers = scope.get("headers") or []
            if any(name.lower() in INBOUND_CONTEXT_HEADERS for name, _ in headers):
                kept = [(n, v) for n, v in headers if n.lower() not in INBOUND_CONTEXT_HEADERS]
                scope = {**scope, "headers": kept}
        await self.application(scope, receive, send)


def _method_only(scope: dict) -> tuple[str, dict]:
    # An unknown method is `_OTHER`: a client must not choose span names.
    return sanitize_method(str(scope.get("method") or "")) or "HTTP", {}


def _drop_query(span: Any) -> None:
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    if attributes.get("url.query"):
        span.set_attribute("url.query", "")


def _asgi_request_hook(span: Any, scope: dict) -> None:
    if span is not None and span.is_recording():
        _drop_query(span)
        scope[_SERVER_SPAN_KEY] = span


def _django_request_hook(span: Any, request: Any) -> None:
    if span.is_recording():
        _drop_query(span)


def _django_response_hook(span: Any, request: Any, response: Any) -> None:
    """Name the ASGI server span after the route pattern Django resolved."""
    server = getattr(request, "scope", {}).get(_SERVER_SPAN_KEY)
    route = getattr(getattr(request, "resolver_match", None), "route", "")
    if server is not None and route and server.is_recording():
        server.set_attribute("http.route", route)
        server.update_name(f"{sanitize_method(str(request.method or ''))} {route}")


# --- Celery ----------------------------------------------------------------------------------


def connect_celery_signals() -> None:
    """Set tracing up in each Celery process after its fork, and flush it when it stops."""
    from celery import signals

    signals.worker_process_init.connect(_on_worker_process_init, weak=False)
    signals.worker_init.connect(_on_worker_init, weak=False)
    signals.beat_init.connect(_on_beat_init, weak=False)
    signals.worker_process_shutdown.connect(_on_shutdown, weak=False)
    signals.worker_shutdown.connect(_on_shutdown, weak=False)


def _on_worker_process_init(**_: Any) -> None:
    setup("worker")


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """A pool that runs tasks in the worker's own process (threads, gevent) gets no
    `worker_process_init`: set up here. A prefork worker waits for its children."""
    if not configured() or sender is None:
        return
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool
    from celery.concurrency.solo import TaskPool as SoloPool

    pool = get_implementation(sender.pool_cls)
    if not (isinstance(pool, type) and issubclass(pool, PreforkPool | SoloPool)):
        setup("worker")


def _on_beat_init(**_: Any) -> None:
    setup("beat")


def _on_shutdown(**_: Any) -> None:
    shutdown()


# --- Spans of our own ------------------------------------------------------------------------


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around a step (`ssh.connect`, `ssh.command`...). Names are fixed strings and
    attributes never hold a secret, an organization or a user. Yields None with tracing off."""
    if not enabled():
        yield None
        return
    from opentelemetry import trace

    tracer = trace.get_tracer(TRACER_NAME)
    # The SDK would record the exception's message; ours can quote a peer (paramiko's banner
    # errors), so a failed step says only the exception's type.
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            _failed(current, exc)
            raise


def start_span(name: str, **attributes: Any) -> Any:
    """A span that the caller ends itself with `end_span` (a step whose start and end are seen
    in different callbacks); None with tracing off. Not made current."""
    if not enabled():
        return None
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME).start_span(name, attributes=attributes)


def end_span(span: Any, error: BaseException | None = None) -> None:
    """End a span from `start_span`, failed when `error` is given."""
    if error is not None:
        _failed(span, error)
    span.end()


def _failed(span: Any, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR))


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span ("" with tracing off, outside a span, or in a
    span that is not sampled: nothing is stored that no trace would show)."""
    if not enabled():
        return ""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().is_recording():
        return ""

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def job_span(
    *, kind: str, traceparent: str, attributes: dict[str, Any] | None = None
) -> Iterator[Any]:
    """The span of one job run: a child of the request that enqueued the run (its stored
    `traceparent`), linked to the Celery delivery that carried it here. A run with no stored
    context (a scheduled job) is a child of the delivery itself. Yields None with tracing off."""
    if not enabled():
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    delivery = trace.get_current_span().get_span_context()
    parent = None
    links = []
    if traceparent:
        parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if delivery.is_valid:
            links.append(trace.Link(delivery))
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"job {kind}",
        context=parent,
        links=links,
        kind=trace.SpanKind.CONSUMER,
        attributes={"autoglue.job.kind": kind, **(attributes or {})},
        record_exception=False,
        # The status would carry str(exception); job_span_outcome sets a bare error status.
        set_status_on_exception=False,
    ) as current:
        yield current


def job_span_outcome(span: Any, status: str) -> None:
    """Record a run's final status on its span (an error status unless it succeeded); the
    error text is not recorded, the job log holds it."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("autoglue.job.status", status)
    if status != "succeeded":
        span.set_status(Status(StatusCode.ERROR))
