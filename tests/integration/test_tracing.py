"""Traces: one createBook is one trace, from the HTTP request to the push to a subscription cohort."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Receive, Scope, Send

from app import tracing
from app.bootstrap import Container, container
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.live.notices import CATALOG_TOPIC, ChangeNotice
from app.main import create_app
from app.settings import Settings
from tests.integration.bus_support import wait_until

SECRET = "tracing-test-secret-of-thirty-two-bytes"
CREATE_BOOK = """
mutation($input: CreateBookInput!) { createBook(input: $input) {
  __typename ... on CreateBookSuccess { bookId } } }"""
CREATE_NAMED = """
mutation($name: String!) {
  createAuthor(input: {name: $name}) { ... on CreateAuthorSuccess { authorId } }
  createCategory(input: {name: $name}) { ... on CreateCategorySuccess { categoryId } }
  createPublisher(input: {name: $name}) { ... on CreatePublisherSuccess { publisherId } }
}"""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Record in memory every span the server would export (tracing is off again afterwards)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.sampler(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        yield spans
    finally:
        tracing.uninstall()
        provider.shutdown()


@pytest.fixture
async def running(
    make_settings: Callable[[], Settings],
) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    """The API with its workers in this process, and an admin's HTTP client of its ASGI app."""
    settings = dataclasses.replace(make_settings(), jwt_secret=SECRET)
    app = create_app(settings, workers=True)
    async with container(settings, workers=True) as built:
        token = issue(SECRET, subject="admin", name="Admin", roles=(ADMIN, CUSTOMER))
        transport = httpx.ASGITransport(app=_with_state(app, built))
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
            yield built, http


def _with_state(app: ASGIApp, built: Container) -> ASGIApp:
    """The app as the lifespan would have left it: its requests see the container (no lifespan run)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {"container": built}
        await app(scope, receive, send)

    return serve


async def _post(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def test_one_create_book_is_one_trace_from_request_to_cohort_push(
    exporter: InMemorySpanExporter, running: tuple[Container, httpx.AsyncClient]
) -> None:
    built, http = running
    pushed: list[str] = []

    async def render(notice: ChangeNotice) -> str:
        return notice.entity_id

    async def send(payload: str) -> None:
        pushed.append(payload)

    cohort = asyncio.create_task(built.hub.cohorts.follow("catalog", CATALOG_TOPIC, render, send))
    try:
        named = await _post(http, CREATE_NAMED, {"name": "Ursula K. Le Guin"})
        refs = [named["createAuthor"]["authorId"], named["createCategory"]["categoryId"]]
        refs.append(named["createPublisher"]["publisherId"])
        # Settled first, so that the book's event is a batch of its own on every consumer.
        await wait_until(_all_pushed(pushed, refs), what="the references' notices")
        book = {"name": "The Dispossessed", "description": "Shevek.", "price": "11.00", "priceSale": None}
        ids = {"categoryId": refs[1], "publisherId": refs[2], "authorIds": [refs[0]]}
        created = (await _post(http, CREATE_BOOK, {"input": {**book, **ids}}))["createBook"]
        await wait_until(_all_pushed(pushed, [created["bookId"]]), what="the book's notice")
    finally:
        cohort.cancel()
        await asyncio.gather(cohort, return_exceptions=True)

    spans = exporter.get_finished_spans()
    command = _one(spans, "command CreateBook")
    trace = _trace(spans, command.context.trace_id)
    request, append = _one(trace, "POST /graphql"), _one(trace, "eventstore append")
    assert command.parent is not None and command.parent.span_id == request.context.span_id
    assert _parent_of(append, trace).name == "command CreateBook"
    relay = _one(trace, "relay xadd")
    assert _parent_of(relay, trace) is command
    assert [link.context.span_id for link in relay.links] == [command.context.span_id]
    consume = _one(trace, "consume catalog")
    assert _parent_of(consume, trace) is command
    assert [link.context.span_id for link in consume.links] == [command.context.span_id]
    assert _parent_of(_one(trace, "apply catalog"), trace) is consume
    notify = next(s for s in trace if s.name == "notify" and _parent_of(s, trace) is consume)
    push = _one(trace, "push cohort")
    assert _parent_of(push, trace) is notify
    assert push.attributes is not None and push.attributes["bookworm.topic"] == CATALOG_TOPIC
    # The instrumentations' spans are in it too: asyncpg's under the append, Redis's under the XADD.
    assert _children(append, trace) and _children(relay, trace)


async def test_a_query_is_one_span_and_a_mutation_keeps_its_statements(
    exporter: InMemorySpanExporter, running: tuple[Container, httpx.AsyncClient]
) -> None:
    _, http = running
    await _post(http, CREATE_NAMED, {"name": "Ursula K. Le Guin"})
    mutation = _one(exporter.get_finished_spans(), "POST /graphql")
    assert mutation.attributes is not None and mutation.attributes["graphql.operation.type"] == "mutation"
    statements = [s.name for s in _trace(exporter.get_finished_spans(), mutation.context.trace_id)]
    assert "INSERT" in statements, statements
    exporter.clear()
    await _post(http, "query Shelf { books(first: 5) { edges { node { id name } } } }", {})
    (request,) = [s for s in exporter.get_finished_spans() if s.name == "POST /graphql"]
    assert request.attributes is not None
    assert request.attributes["graphql.operation.name"] == "Shelf"
    assert _trace(exporter.get_finished_spans(), request.context.trace_id) == [request]
    # The budget charge (EVALSHA) is in no trace, and neither is any statement outside a request.
    spans = exporter.get_finished_spans()
    assert not [
        s.name for s in spans if s.name == "EVALSHA" or (s.parent is None and s.kind is SpanKind.CLIENT)
    ]


def _all_pushed(pushed: list[str], ids: list[str]) -> Callable[[], Any]:
    async def check() -> bool:
        return all(i in pushed for i in ids)

    return check


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _trace(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def _children(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == span.context.span_id]


def _parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, span.name
    return next(s for s in spans if s.context is not None and s.context.span_id == span.parent.span_id)
