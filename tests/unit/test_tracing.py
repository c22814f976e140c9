"""app/tracing.py: no-ops when off; batches of one trace continue it, batches of many link to each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import tracing
from app.eventstore.position import Position
from app.live.notices import ChangeNotice

A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
B = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
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


def _fields(notice: ChangeNotice) -> dict[str, object]:
    return {name: getattr(notice, name) for name in ("position", "topic", "kind", "entity", "entity_id")}
