"""Traces leave real processes over OTLP/HTTP: an API process and a worker run apart, each configured only by
the standard OTEL_* variables, send one `createBook`'s spans to a receiver on 127.0.0.1, and together they
make one trace from the request to the push to the subscription cohort.

The receiver stands where the compose profile's OpenTelemetry collector would: it takes the protobuf
`ExportTraceServiceRequest`s the SDK's exporter posts to `/v1/traces` and keeps their spans.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.settings import Settings
from tests.e2e.clients import TRANSPORT_WS, WAIT, Subscription, bearer, gql
from tests.e2e.conftest import CREATE_AUTHOR, CREATE_CATEGORY, CREATE_PUBLISHER
from tests.e2e.operations import create_book
from tests.faults.cluster import Cluster, Proc, admin_token

pytestmark = pytest.mark.e2e

CATALOG_CHANGED = "subscription { catalogChanged { kind entity entityId } }"
# The whole way of one createBook, each step's span in the process that takes it.
IN_API = ("POST /graphql", "command CreateBook", "eventstore append", "push cohort")
IN_WORKER = ("relay xadd", "consume catalog", "apply catalog", "notify")
WARM_UP = 3.0  # seconds for a created author to reach a live subscription
MAX_BODY = 8 * 1024 * 1024  # the receiver reads no bigger export


@dataclass(frozen=True)
class Received:
    """One span as the receiver got it: the process that sent it (service.instance.id) and its ids."""

    instance: str
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    links: tuple[bytes, ...]


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver (protobuf, optionally gzip) that keeps every span it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list[Received] = []
        self.bad: list[str] = []  # what it refused: the test fails on any
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def keep(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            instance = attributes.get("service.instance.id", "")
            if attributes.get("service.name") != "bookworm":
                self.bad.append(f"resource {attributes}")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    links = tuple(link.span_id for link in span.links)
                    found.append(
                        Received(instance, span.name, span.trace_id, span.span_id, span.parent_span_id, links)
                    )
        with self.lock:
            self.spans.extend(found)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.spans)


class _Export(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if self.path != "/v1/traces" or not 0 < length <= MAX_BODY:
            self.server.bad.append(f"{self.path} with {length} bytes")
            self.send_error(400)
            return
        body = self.rfile.read(length)
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.headers.get("content-type") != "application/x-protobuf":
            self.server.bad.append(f"content type {self.headers.get('content-type')}")
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.keep(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output stays the test's


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def exporting(receiver: Receiver, instance: str) -> dict[str, str]:
    """The standard variables that turn tracing on and name the process (nothing Bookworm-specific)."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={instance}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms between exports (the SDK's default is 5 s)
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }


@pytest.fixture
def traced(make_settings: Callable[[], Settings], tmp_path: Path, receiver: Receiver) -> Iterator[Proc]:
    """`bookworm serve --no-workers` and a `bookworm worker` beside it, both exporting to `receiver`."""
    cluster = Cluster(make_settings(), tmp_path)
    try:
        api = cluster.api("api", **exporting(receiver, "api"))
        cluster.worker(**exporting(receiver, "worker"))
        yield api
    finally:
        cluster.stop()


async def refs_of(admin: httpx.AsyncClient) -> dict[str, Any]:
    author = (await gql(admin, CREATE_AUTHOR, {"name": "Octavia E. Butler"}))["createAuthor"]
    category = (await gql(admin, CREATE_CATEGORY, {"name": "Science fiction"}))["createCategory"]
    publisher = (await gql(admin, CREATE_PUBLISHER, {"name": "Seven Stories"}))["createPublisher"]
    return {
        "authorId": author["authorId"],
        "categoryId": category["categoryId"],
        "publisherId": publisher["publisherId"],
    }


async def until_created(subscription: Subscription, entity: str, entity_id: str | None = None) -> str:
    """The id of the next `entity` created (of `entity_id`, if given) the subscription is told of."""
    while True:
        change = (await subscription.next_data())["catalogChanged"]
        if change["entity"] == entity and change["kind"] == "CREATED":
            if entity_id is None or change["entityId"] == entity_id:
                return str(change["entityId"])


async def live(admin: httpx.AsyncClient, subscription: Subscription) -> None:
    """Return once an author created now reaches the subscription (it starts in the background)."""
    for attempt in range(20):
        author = (await gql(admin, CREATE_AUTHOR, {"name": f"Warm-up {attempt}"}))["createAuthor"]
        try:
            async with asyncio.timeout(WARM_UP):
                await until_created(subscription, "Author", author["authorId"])
            return
        except TimeoutError:
            continue
    pytest.fail("the subscription never saw an author created")


async def one_trace(receiver: Receiver, command: str) -> list[Received]:
    """Every span of the trace whose command span is `command`, once each step's span has arrived."""
    async with asyncio.timeout(WAIT):
        while True:
            spans = receiver.received()
            roots = [s for s in spans if s.name == command]
            if roots:
                trace = [s for s in spans if s.trace_id == roots[0].trace_id]
                if {*IN_API, *IN_WORKER} <= {s.name for s in trace}:
                    return trace
            await asyncio.sleep(0.1)  # another process's export: there is no event to wait on


async def test_one_create_book_reaches_the_receiver_as_one_trace_from_both_processes(
    traced: Proc, receiver: Receiver
) -> None:
    async with AsyncExitStack() as stack:
        admin = await stack.enter_async_context(
            httpx.AsyncClient(base_url=traced.url, timeout=30, headers=bearer(admin_token()))
        )
        watching = await stack.enter_async_context(Subscription(TRANSPORT_WS, traced.ws_url, CATALOG_CHANGED))
        refs = await refs_of(admin)
        await live(admin, watching)
        book = await create_book(admin, refs, name="Kindred", price="10.00", priceSale=None)
        await until_created(watching, "Book", str(book["bookId"]))

    trace = await one_trace(receiver, "command CreateBook")
    by_id = {s.span_id: s for s in trace}
    sent_by = {s.name: s.instance for s in trace if s.name in (*IN_API, *IN_WORKER)}
    assert sent_by == {**dict.fromkeys(IN_API, "api"), **dict.fromkeys(IN_WORKER, "worker")}, sent_by
    # One tree: every span's parent is in the trace, but the request's, which the client did not trace.
    request = next(s for s in trace if s.name == "POST /graphql")
    assert request.parent_span_id == b""
    orphans = [s.name for s in trace if s is not request and s.parent_span_id not in by_id]
    assert not orphans, orphans
    # The worker's steps continue the command across Redis, and link it.
    command = next(s for s in trace if s.name == "command CreateBook")
    for name in ("relay xadd", "consume catalog"):
        step = next(s for s in trace if s.name == name)
        assert by_id[step.parent_span_id] is command and command.span_id in step.links, name
    # The push reached this API process's cohort from the worker's notice.
    push = next(s for s in trace if s.name == "push cohort")
    assert by_id[push.parent_span_id].name == "notify"
    # The instrumentations' spans travelled too: asyncpg's under the append, Redis's under the XADD.
    for name in ("eventstore append", "relay xadd"):
        step = next(s for s in trace if s.name == name)
        assert any(s.parent_span_id == step.span_id for s in trace), f"no client span under {name}"
    assert not receiver.bad, receiver.bad
