"""Traces (OpenTelemetry): on when the standard OTEL_* variables name an OTLP endpoint, free when not.

One mutation is one trace: the command's span writes its W3C `traceparent` into the events' metadata; the
relay's XADD, each consumer's batch, the change notice it publishes (which carries the traceparent of
its publish) and each cohort's push continue it. Work done once for many events (a relayed batch, a
consumer's batch) is the child of their trace when they share one, a root of its own when they do not,
and links to the span of every event it serves.

Off (the default), every helper returns a shared no-op context manager or None at once: no SDK is
imported, no span object is made, no context variable is touched, and asyncpg, Redis and the ASGI app
are left uninstrumented.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "bookworm"
# The variables that ask for export: the OTLP exporter reads them (and the rest of OTEL_EXPORTER_OTLP_*).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

Attributes = Mapping[str, str | int]

_OFF: AbstractContextManager[Any] = contextlib.nullcontext()
_tracer: Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def configure_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Export spans with OTLP (over HTTP) when an OTLP endpoint variable is set; return whether on.

    Called once a process knows it will serve or work; a second call changes nothing.
    """
    if _tracer is not None:
        return True
    wanted = any(environ.get(name) for name in ENDPOINT_VARIABLES)
    if not wanted or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, which win over the default.
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    trace.set_tracer_provider(provider)
    return True


def install(provider: TracerProvider) -> None:
    """Record spans with `provider` and instrument asyncpg and Redis (tests pass an in-memory one)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _tracer, _provider
    _tracer, _provider = provider.get_tracer(SERVICE_NAME), provider
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)


def uninstall() -> None:
    """Stop recording spans and remove the asyncpg and Redis instrumentation."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _tracer, _provider
    _tracer, _provider = None, None
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().uninstrument()


def asgi_middleware() -> list[Any]:
    """The ASGI instrumentation as Starlette middleware when tracing is on; nothing when it is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.middleware import Middleware

    # No span per ASGI message: a request's span and the spans under it say where its time went.
    return [Middleware(OpenTelemetryMiddleware, tracer_provider=_provider, exclude_spans=["receive", "send"])]


def span(
    name: str, *, parent: str | None = None, attributes: Attributes | None = None
) -> AbstractContextManager[Any]:
    """A span around a block: the child of `parent` (a traceparent) if given, else of the current span."""
    if _tracer is None:
        return _OFF
    context = None if parent is None else _context_of(parse(parent))
    return _tracer.start_as_current_span(name, context=context, attributes=attributes)


def batch_span(
    name: str, traceparents: Iterable[str | None], *, attributes: Attributes | None = None
) -> AbstractContextManager[Any]:
    """A span for one piece of work serving many traced items, linked to each item's span.

    The child of their trace when they all share one (one mutation's events), else a root of its own.
    """
    if _tracer is None:
        return _OFF
    served = list({c.span_id: c for tp in traceparents if (c := parse(tp)) is not None}.values())
    one_trace = bool(served) and all(c.trace_id == served[0].trace_id for c in served)
    context = _context_of(served[0]) if one_trace else Context()
    links = [Link(c) for c in served]
    kind = SpanKind.CONSUMER
    return _tracer.start_as_current_span(name, context=context, links=links, kind=kind, attributes=attributes)


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry in metadata or a notice; None when off."""
    if _tracer is None:
        return None
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return None
    return f"00-{current.trace_id:032x}-{current.span_id:016x}-{current.trace_flags:02x}"


def parse(value: str | None) -> SpanContext | None:
    """Read a W3C traceparent (version 00); None when absent or malformed."""
    if not value:
        return None
    parts = value.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    found = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return found if found.is_valid else None


def _context_of(parent: SpanContext | None) -> Context | None:
    return None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
