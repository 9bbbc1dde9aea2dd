"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test installs a
tracer provider). One report's path is one trace: HTTP request → outbox row (the envelope keeps
the W3C `traceparent`) → Kafka record header → consumer span → the events it emits → …

Without a provider every call here is a no-op on OpenTelemetry's non-recording spans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

_TRACER = "fengqiao"
_HEADER = "traceparent"
_IN_ENVELOPE = re.compile(
    rb'"traceparent":\s*"([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"'
)


def configure(service_name: str) -> bool:
    """Install the OTLP exporter once per process if an endpoint is configured; True if on."""
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True  # already configured (another app in this process, or a test)
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


_provider: trace.TracerProvider | None = None


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Trace with this provider instead of the global one (tests: an in-memory exporter)."""
    global _provider
    _provider = provider


_global_on = False  # an SDK provider was installed globally (that cannot be undone)


def _off() -> bool:
    """No provider at all (neither a test's nor an installed SDK one): spans record nothing."""
    global _global_on
    if _provider is not None or _global_on:
        return False
    # get_tracer_provider() reads the environment on every call while none is set: only a
    # cheap module attribute is looked at until one is
    if getattr(trace, "_TRACER_PROVIDER", None) is None:
        return True
    _global_on = not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )
    return not _global_on


def _tracer() -> trace.Tracer:
    if _provider is not None:
        return _provider.get_tracer(_TRACER)
    return trace.get_tracer(_TRACER)


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the current span, or None when not tracing."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None when not tracing."""
    if _off() and not trace.get_current_span().get_span_context().is_valid:
        return None  # no provider and no trace being continued: nothing to inject
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(_HEADER)


@contextmanager
def server_span(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A server span continuing the caller's trace (traceparent request header), if any."""
    if _off() and _HEADER not in headers:  # nothing to record or continue: no context work
        yield trace.INVALID_SPAN
        return
    ctx = propagate.extract(dict(headers))
    with _tracer().start_as_current_span(name, context=ctx, kind=SpanKind.SERVER) as span:
        yield span


def name_server_span(span: Span, name: str, status: int) -> None:
    """Name a server span after its route and record the response status."""
    if not span.is_recording():
        return
    span.update_name(name)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


@contextmanager
def consumer_span(
    name: str, traceparent: str | None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """A consumer span continuing the producer's trace."""
    if _off() and not traceparent:  # nothing to record or continue: no context work
        yield trace.INVALID_SPAN
        return
    ctx = propagate.extract({_HEADER: traceparent} if traceparent else {})
    with _tracer().start_as_current_span(
        name, context=ctx, kind=SpanKind.CONSUMER, attributes=dict(attributes or {})
    ) as span:
        yield span


def traceparent_of(headers: list[tuple[str, bytes]], value: bytes) -> str | None:
    """A record's traceparent: its Kafka header, else the one its envelope kept."""
    for key, raw in headers:
        if key == _HEADER:
            return raw.decode("ascii", errors="replace")
    match = _IN_ENVELOPE.search(value)
    return match.group(1).decode() if match else None


def headers_for(value: bytes) -> list[tuple[str, bytes]]:
    """Kafka headers for an outbox row: the traceparent its envelope kept, if any."""
    match = _IN_ENVELOPE.search(value)
    return [(_HEADER, match.group(1))] if match else []
