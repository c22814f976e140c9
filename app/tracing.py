"""Traces (OpenTelemetry): on when the standard OTEL_* variables name an OTLP endpoint, free when not.

One mutation is one trace: the command's span writes its W3C `traceparent` into the events' metadata; the
relay's XADD, each consumer's batch, the change notice it publishes (which carries the traceparent of
its publish) and each cohort's push continue it. Work done once for many events (a relayed batch, a
consumer's batch) is the child of their trace when they share one, a root of its own when they do not,
and links to the span of every event it serves.

What a trace leaves out, so that a request pays for little more than the SDK's span (bench/tracing.py):
- a read's statements: a query's request is one span, named by its operation, unless
  BOOKWORM_TRACE_READ_STATEMENTS asks for a span per statement too;
- the budget charge every request makes (one EVALSHA): bookkeeping, counted in /metrics instead;
- a database or Redis call that is no part of a request or of an event's work (a poll, a lease
  renewal): a client span with no parent is never recorded;
- everything under a request the sampler leaves out: its calls skip the instrumentation at once.
A mutation keeps every span, from its request to the push to each subscription cohort. A request starts
with its calls suppressed, in the attach that makes its span current, and a mutation's execution lifts
that: a query leaves its statements out and the budget charge its EVALSHA without an attach of their own.

Off (the default), every helper returns a shared no-op context manager or None at once: no SDK is
imported, no span object is made, no context variable is touched, and asyncpg, Redis and the ASGI app
are left uninstrumented.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach, get_current
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

SERVICE_NAME = "bookworm"
# The variables that ask for export: the OTLP exporter reads them (and the rest of OTEL_EXPORTER_OTLP_*).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

Attributes = Mapping[str, str | int]
MAX_NAME = 100  # characters of an operation's name kept on its span

_OFF: AbstractContextManager[Any] = contextlib.nullcontext()
_tracer: Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None
_read_statements = False  # a span per statement of a query, too
_suppressed: Mapping[str, object] | None = None  # what suppress_instrumentation puts in the context, once on


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def configure_from_environment(
    environ: Mapping[str, str] = os.environ, *, read_statements: bool = False
) -> bool:
    """Export spans with OTLP (over HTTP) when an OTLP endpoint variable is set; return whether on.

    OTEL_TRACES_SAMPLER and its argument choose which traces are kept, as the SDK reads them. Called
    once a process knows it will serve or work; a second call changes nothing.
    """
    if _tracer is not None:
        return True
    wanted = any(environ.get(name) for name in ENDPOINT_VARIABLES)
    if not wanted or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource(environ), sampler=sampler())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider, read_statements=read_statements)
    trace.set_tracer_provider(provider)
    return True


def resource(environ: Mapping[str, str] = os.environ) -> Resource:
    """What this process's spans say produced them: Bookworm (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    win, as Resource.create reads them), as a resource that hashes once.

    The OTLP encoder groups each batch's spans by resource, hashing it once a span, and the SDK's
    Resource hashes by serialising all its attributes to JSON every time: about a sixth of what
    encoding a request's span costs, more with every attribute an operator adds. A resource never
    changes (the SDK's are immutable), so its hash is worked out once; equality is the SDK's.
    """
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        @functools.cached_property
        def _hash(self) -> int:
            return super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    created = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    return HashedOnce(created.attributes, created.schema_url)


def install(provider: TracerProvider, *, read_statements: bool = False) -> None:
    """Record spans with `provider` and instrument asyncpg and Redis (tests pass an in-memory one)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    global _tracer, _provider, _read_statements, _suppressed
    _tracer, _provider = provider.get_tracer(SERVICE_NAME), provider
    _read_statements = read_statements
    empty = attach(Context())
    try:
        with suppress_instrumentation():
            _suppressed = dict(get_current())  # the keys it sets, and nothing else
    finally:
        detach(empty)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)


def uninstall() -> None:
    """Stop recording spans and remove the asyncpg and Redis instrumentation."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    global _tracer, _provider, _read_statements, _suppressed
    _tracer, _provider, _read_statements, _suppressed = None, None, False, None
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().uninstrument()


def sampler(chosen: Sampler | None = None) -> Sampler:
    """`chosen` (by default the one OTEL_TRACES_SAMPLER names), except that a database or Redis call with
    no parent span is never recorded: it belongs to no request and to no event's work."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default

    class NoLoneCalls(Sampler):
        def __init__(self, chosen: Sampler) -> None:
            self.chosen = chosen

        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if (
                kind is SpanKind.CLIENT
                and not trace.get_current_span(parent_context).get_span_context().is_valid
            ):
                return SamplingResult(Decision.DROP)
            return self.chosen.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"NoLoneCalls{{{self.chosen.get_description()}}}"

    return NoLoneCalls(chosen or _get_from_env_or_default())


def asgi_middleware() -> list[Any]:
    """A span for each request to the GraphQL endpoint, as Starlette middleware, when tracing is on."""
    if _tracer is None:
        return []
    from starlette.middleware import Middleware

    return [Middleware(RequestSpans, tracer=_tracer)]


class RequestSpans:
    """ASGI middleware: one server span per HTTP request to /graphql, continuing the caller's trace.

    What OpenTelemetry's ASGI instrumentation records that matters here, at a fraction of its CPU (that
    instrumentation cost about 140 µs a request on this project's machine one evening, this about 25 µs
    with the span recorded and encoded, 6 µs unrecorded, in a loop: bench/tracing_span.py; counted, about
    445,000 and 84,000 instructions a request, where a whole `book(id)` is 4.2 million): the caller's
    context from the request's headers (through the configured propagators), and the span named
    "POST /graphql" (or "GET /graphql") with `http.response.status_code`, and `error.type` for a 5xx; an
    exception is recorded on the span. The name says the method and the route, the only one traced, so
    neither `http.request.method` nor `http.route` is repeated as an attribute: each attribute costs the
    SDK about 33,000 instructions a span to record and encode to OTLP, 0.8 % of a `book(id)`.
    Health checks, /metrics, the IDE's assets and websocket connections make no span: a subscription's
    work is traced per change, from the mutation that made it (`push cohort`).
    """

    ROUTE = "/graphql"

    def __init__(self, app: Any, tracer: Tracer) -> None:
        from opentelemetry import propagate

        self.app = app
        self.tracer = tracer
        self.extract = propagate.extract
        # The headers the configured propagators read (OTEL_PROPAGATORS): a request with none of them
        # starts a trace of its own without asking each propagator.
        self.fields = frozenset(
            name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.ROUTE:
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        carried = any(name in self.fields for name, _ in headers)
        parent = self.extract(headers, getter=_HEADERS) if carried else None
        method = scope["method"]
        # start_span and attach rather than start_as_current_span: two generator-based context
        # managers fewer on every request.
        request = self.tracer.start_span(f"{method} {self.ROUTE}", context=parent, kind=SpanKind.SERVER)
        if request.is_recording():
            send = _labelling_status(request, send)
        # The request's database and Redis calls skip their instrumentation at once, as under
        # suppress_instrumentation, set in the same attach as its span: a query's statements and the
        # budget charge make no spans, and operation() lifts it for a mutation's execution. A request
        # sampling left out keeps it throughout: a child of an unsampled span is not sampled either.
        assert _suppressed is not None
        token = attach(trace.set_span_in_context(request, Context({**get_current(), **_suppressed})))
        try:
            await self.app(scope, receive, send)
        except Exception as failed:  # recorded as use_span does; the exception goes on
            if request.is_recording():
                request.record_exception(failed)
                request.set_status(StatusCode.ERROR, f"{type(failed).__name__}: {failed}")
            raise
        finally:
            detach(token)
            request.end()


def _labelling_status(request: trace.Span, send: Any) -> Any:
    """`send`, labelling `request` with the response's status on the way."""

    async def labelled(message: Any) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            request.set_attribute("http.response.status_code", status)
            if status >= 500:
                request.set_attribute("error.type", str(status))
                request.set_status(StatusCode.ERROR)
        await send(message)

    return labelled


class _Headers(Getter[Any]):
    """Reads a propagator's header from an ASGI scope's list of (name, value) byte pairs."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        wanted = key.lower().encode("latin-1")
        found = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return found or None

    def keys(self, carrier: Any) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_HEADERS = _Headers()


def span(
    name: str, *, parent: str | None = None, attributes: Attributes | None = None
) -> AbstractContextManager[Any]:
    """A span around a block: the child of `parent` (a traceparent) if given, else of the current span."""
    if _tracer is None:
        return _OFF
    context = None if parent is None else _context_of(parse(parent))
    return _tracer.start_as_current_span(name, context=context, attributes=attributes)


def redis_span(commands: str) -> AbstractContextManager[Any]:
    """A client span for a call to Redis made on a line (app/redis_line.py), which redis-py's
    instrumentation does not see: the child of the current span, as that instrumentation's would be
    (and, like its spans, dropped with no current span)."""
    if _tracer is None:
        return _OFF
    attributes = {"db.system": "redis", "db.operation": commands}
    return _tracer.start_as_current_span(commands, kind=SpanKind.CLIENT, attributes=attributes)


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


def operation(kind: str | None, name: str | None) -> AbstractContextManager[Any]:
    """Around one GraphQL operation's execution: its request's span is labelled with it, and a query's
    statements make no spans (unless BOOKWORM_TRACE_READ_STATEMENTS).

    Under a recorded request (RequestSpans), the calls are suppressed already: a query leaves them so,
    at no cost, and a mutation's execution lifts it. Elsewhere (a websocket's operation), a query
    suppresses them for its execution.
    """
    if _tracer is None:
        return _OFF
    current = get_current()
    request = trace.get_current_span(current)
    recording = request.is_recording()
    if kind and recording:
        request.set_attribute("graphql.operation.type", kind)
        if name:
            request.set_attribute("graphql.operation.name", name[:MAX_NAME])
    traced = kind != "query" or _read_statements
    if not _is_suppressed(current):
        return _OFF if traced else _Untraced()
    return _Traced() if traced and recording else _OFF


def untraced() -> AbstractContextManager[Any]:
    """Calls to PostgreSQL and Redis under it make no spans (the budget charge: bookkeeping)."""
    return _OFF if _suppressed is None or _is_suppressed(get_current()) else _Untraced()


def _is_suppressed(context: Context) -> bool:
    """Whether instrumentation is suppressed in `context` already (an unrecorded request's is), as
    is_instrumentation_enabled reads it."""
    assert _suppressed is not None
    return any(map(context.get, _suppressed))


class _Untraced:
    """suppress_instrumentation() as one attach and one detach: no generator, one copy of the context."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        assert _suppressed is not None
        self._token = attach(Context({**get_current(), **_suppressed}))

    def __exit__(self, *_: object) -> None:
        detach(self._token)


class _Traced:
    """The current context without the suppression: the instrumentations record a mutation's calls."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        assert _suppressed is not None
        current = get_current()
        self._token = attach(Context({k: v for k, v in current.items() if k not in _suppressed}))

    def __exit__(self, *_: object) -> None:
        detach(self._token)


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
