"""OpenTelemetry: one trace from trigger to the last step, carried in NATS headers.

The W3C ``traceparent`` (and ``tracestate``) headers travel with every message; this module
injects them from the current context and extracts them into a :class:`Context`, with the
W3C propagator itself (not the global one, which ``OTEL_PROPAGATORS`` may change).
Spans are exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from flowmesh_proto import headers as h

TRACER_NAME = "flowmesh"
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

_propagator = TraceContextTextMapPropagator()
Attributes = Mapping[str, AttributeValue]


def configure_tracing(
    service_name: str, *, environ: Mapping[str, str] | None = None
) -> Callable[[], None]:
    """Install a TracerProvider for ``service_name``; returns its shutdown (flushes spans).

    Only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the exporter reads that variable and
    its companions itself): recording spans nobody exports cost about a fifth of the
    gateway's CPU (measured, bench/README.md). Without it, spans are the API's no-op ones,
    which still carry a caller's ``traceparent`` on to the next hop (and into logs), but
    start no trace of their own. A process has one provider: when one is already
    installed, it is kept and the shutdown does nothing. The shutdown
    blocks while it flushes (up to the exporter's timeout): from a running event loop, call
    it as ``await asyncio.to_thread(shutdown)``.
    """
    env = os.environ if environ is None else environ
    if not env.get(ENDPOINT_VARIABLE):
        return lambda: None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return lambda: None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider.shutdown


@functools.cache
def tracer() -> trace.Tracer:
    """Flowmesh's tracer (a proxy until a provider is installed), looked up once."""
    return trace.get_tracer(TRACER_NAME)


def inject(headers: dict[str, str], context: Context | None = None) -> dict[str, str]:
    """Add ``traceparent`` (and ``tracestate``) for ``context`` (default: the current one)."""
    _propagator.inject(headers, context=context)
    return headers


def extract(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by ``headers`` (an empty context when there is none)."""
    if not headers:
        return Context()
    carrier = {
        key.lower(): value
        for key, value in headers.items()
        if key.lower() in (h.TRACEPARENT, h.TRACESTATE)
    }
    return _propagator.extract(carrier, context=Context())


def trace_id(context: Context | None = None) -> str | None:
    """The hex trace id of ``context`` (default: the current span), or None."""
    span_context = trace.get_current_span(context).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


@contextmanager
def consumer_span(
    name: str,
    headers: Mapping[str, str] | None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Attributes | None = None,
) -> Iterator[Span]:
    """A span continuing the trace of a received message, current inside the block."""
    with tracer().start_as_current_span(
        name, context=extract(headers), kind=kind, attributes=attributes
    ) as span:
        yield span


@contextmanager
def producer_span(
    name: str, *, kind: SpanKind = SpanKind.PRODUCER, attributes: Attributes | None = None
) -> Iterator[dict[str, str]]:
    """A child span of the current context; yields headers carrying it to the receiver."""
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes):
        yield inject({})


def mark_failed(span: Span, description: str) -> None:
    """Set the span's status to error (for failures answered, not raised)."""
    span.set_status(Status(StatusCode.ERROR, description))
