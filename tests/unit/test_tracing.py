"""app/tracing.py: no-ops when off; batches of one trace continue it, batches of many link to each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from app import tracing
from app.eventstore.position import Position
from app.live.notices import ChangeNotice

A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
B = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
DROP, RECORD_AND_SAMPLE = Decision.DROP, Decision.RECORD_AND_SAMPLE
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.uninstall()
        provider.shutdown()


def test_off_every_helper_is_a_shared_no_op() -> None:
    assert not tracing.enabled()
    assert tracing.span("a") is tracing.span("b", parent=A)
    assert tracing.batch_span("a", [A, OTHER]) is tracing.span("a")
    with tracing.span("a"):
        assert tracing.traceparent() is None
    assert tracing.asgi_middleware() == []
    assert tracing.operation("query", "Q") is tracing.untraced() is tracing.span("a")


def test_without_an_endpoint_nothing_is_set_up() -> None:
    assert not tracing.configure_from_environment({"OTEL_SERVICE_NAME": "bookworm"})
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert not tracing.configure_from_environment(endpoint)
    assert not tracing.enabled()


@pytest.mark.parametrize("value", [None, "", "garbage", "00-0-0-01", A.replace("0af7", "zzzz")])
def test_a_missing_or_malformed_traceparent_reads_as_none(value: str | None) -> None:
    assert tracing.parse(value) is None


def test_a_span_continues_the_traceparent_it_is_given(exporter: InMemorySpanExporter) -> None:
    with tracing.span("child", parent=A):
        carried = tracing.traceparent()
    (child,) = exporter.get_finished_spans()
    parent = tracing.parse(A)
    assert parent is not None and child.parent is not None
    assert (child.context.trace_id, child.parent.span_id) == (parent.trace_id, parent.span_id)
    assert carried == f"00-{child.context.trace_id:032x}-{child.context.span_id:016x}-01"


def test_a_batch_of_one_trace_continues_it_and_links_each_event(exporter: InMemorySpanExporter) -> None:
    with tracing.batch_span("batch", [A, None, B, A]):
        pass
    (batch,) = exporter.get_finished_spans()
    first = tracing.parse(A)
    assert first is not None and batch.parent is not None
    assert (batch.context.trace_id, batch.parent.span_id) == (first.trace_id, first.span_id)
    assert [link.context.span_id for link in batch.links] == [int(A[36:52], 16), int(B[36:52], 16)]


def test_a_batch_of_many_traces_is_a_root_linked_to_each(exporter: InMemorySpanExporter) -> None:
    with tracing.span("around"), tracing.batch_span("batch", [A, OTHER]):
        pass
    batch = next(s for s in exporter.get_finished_spans() if s.name == "batch")
    assert batch.parent is None
    assert {link.context.trace_id for link in batch.links} == {int(A[3:35], 16), int(OTHER[3:35], 16)}


def test_a_notice_carries_a_traceparent_only_when_it_has_one() -> None:
    notice = ChangeNotice(
        position=Position(7, 3), topic="catalog", kind="CREATED", entity="Book", entity_id="b"
    )
    assert "tp" not in notice.to_json()
    traced = ChangeNotice.from_json(ChangeNotice(**{**_fields(notice), "traceparent": A}).to_json())
    assert traced.traceparent == A
    assert traced == notice  # not part of the change
    assert ChangeNotice.from_json(notice.to_json()).traceparent is None


def test_the_resource_is_the_sdks_with_its_hash_worked_out_once() -> None:
    ours = tracing.resource({})
    theirs = Resource(ours.attributes, ours.schema_url)
    assert ours == theirs and theirs == ours and hash(ours) == hash(theirs) == hash(ours)
    assert ours.attributes["service.name"] == "bookworm"
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=ours)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    for name in ("a", "b"):
        provider.get_tracer("test").start_span(name).end()
    (group,) = encode_spans(spans.get_finished_spans()).resource_spans  # one resource, both spans
    assert {kv.key: kv.value.string_value for kv in group.resource.attributes} == dict(ours.attributes)
    assert [span.name for span in group.scope_spans[0].spans] == ["a", "b"]


def test_a_call_outside_any_request_or_event_work_makes_no_trace() -> None:
    sampler = tracing.sampler(ALWAYS_ON)
    parent = trace.set_span_in_context(NonRecordingSpan(tracing.parse(A)))  # type: ignore[arg-type]
    lone = sampler.should_sample(None, 1, "UPDATE", kind=SpanKind.CLIENT)
    under = sampler.should_sample(parent, 1, "UPDATE", kind=SpanKind.CLIENT)
    own = sampler.should_sample(None, 1, "consume catalog", kind=SpanKind.CONSUMER)
    assert (lone.decision, under.decision, own.decision) == (DROP, RECORD_AND_SAMPLE, RECORD_AND_SAMPLE)
    assert "AlwaysOnSampler" in sampler.get_description()


def test_a_query_labels_its_request_and_leaves_its_statements_out(exporter: InMemorySpanExporter) -> None:
    with tracing.span("request"):
        with tracing.operation("query", "Book"):
            assert not is_instrumentation_enabled()
        with tracing.operation("mutation", None):
            assert is_instrumentation_enabled()
        with tracing.untraced():
            assert not is_instrumentation_enabled()
    (request,) = exporter.get_finished_spans()
    assert request.attributes == {"graphql.operation.type": "mutation", "graphql.operation.name": "Book"}


async def test_read_statements_can_be_asked_for() -> None:
    provider = TracerProvider()
    tracing.install(provider, read_statements=True)
    seen: list[bool] = []

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        with tracing.operation("query", "Book"):
            seen.append(is_instrumentation_enabled())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, object]) -> None:
        pass

    try:
        with tracing.operation("query", "Book"):
            seen.append(is_instrumentation_enabled())
        (middleware,) = tracing.asgi_middleware()
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
        await tracing.RequestSpans(app, **middleware.kwargs)(scope, None, send)  # lifted under a request
    finally:
        tracing.uninstall()
        provider.shutdown()
    assert seen == [True, True]


@pytest.mark.parametrize(
    ("status", "headers", "error"), [(200, [], False), (503, [(b"traceparent", A.encode())], True)]
)
async def test_a_graphql_request_is_one_server_span(
    exporter: InMemorySpanExporter, status: int, headers: list[tuple[bytes, bytes]], error: bool
) -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    (middleware,) = tracing.asgi_middleware()
    spans = tracing.RequestSpans(app, **middleware.kwargs)
    for path in ("/graphql", "/healthz"):
        scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
        await spans(scope, None, send)
    (request,) = exporter.get_finished_spans()
    assert (request.name, request.kind, len(sent)) == ("POST /graphql", SpanKind.SERVER, 4)
    # The method and the route are in the name: no attribute repeats them (each costs the encoder).
    labels = {"http.response.status_code": status} | ({"error.type": str(status)} if error else {})
    assert request.attributes == labels
    assert (request.status.status_code is StatusCode.ERROR) is error
    continued = tracing.parse(A)
    assert continued is not None
    assert (request.context.trace_id == continued.trace_id) is bool(headers)


async def test_a_recorded_request_traces_the_calls_of_a_mutation_only(exporter: InMemorySpanExporter) -> None:
    seen: list[bool] = []

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        seen.append(is_instrumentation_enabled())  # the budget charge, say
        for kind in ("query", "mutation", "subscription", None):
            with tracing.operation(kind, None):
                seen.append(is_instrumentation_enabled())
        seen.append(is_instrumentation_enabled())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, object]) -> None:
        pass

    (middleware,) = tracing.asgi_middleware()
    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    await tracing.RequestSpans(app, **middleware.kwargs)(scope, None, send)
    assert seen == [False, False, True, True, True, False]
    assert is_instrumentation_enabled()
    (request,) = exporter.get_finished_spans()
    assert request.attributes is not None and request.attributes["graphql.operation.type"] == "subscription"


async def test_a_request_sampling_leaves_out_skips_the_instrumentation_under_it() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.sampler(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    seen: list[object] = []

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        seen.extend([is_instrumentation_enabled(), tracing.traceparent()])
        seen.append(tracing.operation("query", "Book") is tracing.untraced())  # nothing left to suppress
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, object]) -> None:
        pass

    try:
        (middleware,) = tracing.asgi_middleware()
        scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
        await tracing.RequestSpans(app, **middleware.kwargs)(scope, None, send)
        assert is_instrumentation_enabled()
    finally:
        tracing.uninstall()
        provider.shutdown()
    enabled, carried, shared = seen
    assert (enabled, shared, spans.get_finished_spans()) == (False, True, ())
    assert isinstance(carried, str) and not int(carried[-2:], 16) & 1  # what it starts carries "not sampled"


def _fields(notice: ChangeNotice) -> dict[str, object]:
    return {name: getattr(notice, name) for name in ("position", "topic", "kind", "entity", "entity_id")}


@pytest.mark.parametrize("value", [b"garbage", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b"x" * 8_000])
async def test_a_malformed_traceparent_starts_a_trace_of_its_own(
    exporter: InMemorySpanExporter, value: bytes
) -> None:
    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, object]) -> None:
        pass

    (middleware,) = tracing.asgi_middleware()
    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": [(b"traceparent", value)]}
    await tracing.RequestSpans(app, **middleware.kwargs)(scope, None, send)
    (request,) = exporter.get_finished_spans()
    assert request.parent is None and request.context.is_valid


async def test_a_request_that_raises_records_it_and_leaves_the_context_as_it_was(
    exporter: InMemorySpanExporter,
) -> None:
    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        raise RuntimeError("boom")

    (middleware,) = tracing.asgi_middleware()
    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    with pytest.raises(RuntimeError):
        await tracing.RequestSpans(app, **middleware.kwargs)(scope, None, None)
    (request,) = exporter.get_finished_spans()
    assert request.status.status_code is StatusCode.ERROR
    assert [event.name for event in request.events] == ["exception"]
    assert not trace.get_current_span().get_span_context().is_valid
