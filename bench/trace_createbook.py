"""One real `createBook` trace, span by span: what each step of a write took, from request to subscriber.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... BOOKWORM_REDIS_URL=redis://... python bench/trace_createbook.py

In this process, no server: a scratch database and Redis prefix, the container with its workers (relay,
consumers, scheduler) and the ASGI app, with tracing installed on an SDK provider that keeps every span in
memory (every trace recorded, as `parentbased_always_on`, the SDK's default sampler). A `catalogChanged`
subscription over the ASGI websocket (graphql-transport-ws) follows the catalog; the author, category and
publisher are created and delivered first, so the book's event is a batch of its own on every consumer.
Then one `createBook`; once its change has reached the subscriber and its trace has stopped growing, the
trace is printed as a tree: each span's start (ms after the request's), duration (ms), name, kind and
key attributes, children under their parent in order of start. Durations are wall time on a machine that
may be busy: read them as where the time goes, not as a benchmark.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench's own helpers (_scratch, tracing)

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing import CREATE_BOOK, SECRET, SEED, App, post, scratch_settings

from app import tracing
from app.bootstrap import container
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.main import create_app

SUBSCRIPTION = "subscription { catalogChanged { kind entity entityId } }"
PROBE = """
mutation($name: String!) {
  createPublisher(input: {name: $name}) { ... on CreatePublisherSuccess { publisherId } }
}"""
WAIT = 20.0  # seconds for any one step; the script fails rather than print a partial trace
SETTLED = 1.0  # seconds without a new span in the trace before it is taken as complete
STATEMENT = 70  # characters of a statement shown
SHOWN = ("db.system", "db.system.name", "db.statement", "db.query.text", "net.peer.name", "server.address")


class Subscriber:
    """A graphql-transport-ws client of the ASGI app's websocket: the entity ids of the changes it gets."""

    def __init__(self, app: App, state: dict[str, Any], token: str) -> None:
        self.app, self.state, self.token = app, state, token
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[str] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"bench"), (b"sec-websocket-protocol", b"graphql-transport-ws")],
            "subprotocols": ["graphql-transport-ws"],
            "client": ("127.0.0.1", 50001),
            "server": ("127.0.0.1", 80),
            "state": self.state,
        }
        await self.inbox.put({"type": "websocket.connect"})
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}}
        await self.inbox.put({"type": "websocket.receive", "text": json.dumps(init)})
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
        await self.inbox.put({"type": "websocket.receive", "text": json.dumps(subscribe)})
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self._sent))

    async def _sent(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            raise RuntimeError(f"the subscription's socket was closed: {message}")
        if message["type"] != "websocket.send":
            return
        frame = json.loads(message["text"])
        if frame["type"] == "next":
            self.seen.append(frame["payload"]["data"]["catalogChanged"]["entityId"])
            self.arrived.set()
        elif frame["type"] in ("error", "connection_error"):
            raise RuntimeError(f"the subscription failed: {frame}")

    async def wait_for(self, ids: Sequence[str], seconds: float = WAIT) -> None:
        async with asyncio.timeout(seconds):
            while not all(i in self.seen for i in ids):
                self.arrived.clear()
                await self.arrived.wait()

    async def stop(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            try:
                async with asyncio.timeout(WAIT):
                    await self.task
            except TimeoutError:
                self.task.cancel()


async def live(subscriber: Subscriber, app: App, state: dict[str, Any], token: str) -> None:
    """Return once the subscription delivers: a change made before it joined the hub never comes."""
    for attempt in range(10):
        probe = await post(app, state, token, PROBE, {"name": f"Probe {attempt}"})
        try:
            await subscriber.wait_for([probe["createPublisher"]["publisherId"]], seconds=2.0)
        except TimeoutError:
            continue
        return
    raise RuntimeError("the subscription never delivered a change")


async def settled(spans: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    """The trace's spans once no new one has ended for SETTLED seconds."""
    count = -1
    async with asyncio.timeout(WAIT):
        while True:
            found = [s for s in spans.get_finished_spans() if s.context and s.context.trace_id == trace_id]
            if len(found) == count:
                return found
            count = len(found)
            await asyncio.sleep(SETTLED)


def describe(span: ReadableSpan) -> str:
    attributes = dict(span.attributes or {})
    if span.kind is SpanKind.CLIENT:
        attributes = {k: v for k, v in attributes.items() if k in SHOWN}
    shown = []
    for key, value in attributes.items():
        text = " ".join(str(value).split())
        shown.append(f"{key}={text[:STATEMENT] + '…' if len(text) > STATEMENT else text}")
    if span.links:
        shown.append(f"links={len(span.links)}")
    return " ".join(shown)


def print_tree(trace: list[ReadableSpan]) -> None:
    by_id = {s.context.span_id: s for s in trace if s.context}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in trace:
        parent = span.parent.span_id if span.parent and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)
    start = min(s.start_time or 0 for s in trace)
    end = max(s.end_time or 0 for s in trace)
    took = (end - start) / 1e6
    print(f"createBook: one trace of {len(trace)} spans, {took:.1f} ms from its first start to its last end")
    print(f"{'start ms':>9} {'ms':>8}  span (kind)  attributes")

    def show(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            offset = ((span.start_time or 0) - start) / 1e6
            took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            label = f"{'  ' * depth}{span.name} ({span.kind.name.lower()})"
            print(f"{offset:9.1f} {took:8.2f}  {label}  {describe(span)}".rstrip())
            show(span.context.span_id if span.context else None, depth + 1)

    show(None, 0)


async def main() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.sampler())
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    try:
        async with AsyncExitStack() as stack:
            settings = await scratch_settings(stack, "bench_trace_createbook")
            built = await stack.enter_async_context(container(settings, workers=True))
            app, state = create_app(settings, workers=False), {"container": built}
            token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
            subscriber = Subscriber(app, state, token)
            await subscriber.start()
            try:
                await live(subscriber, app, state, token)
                named = await post(app, state, token, SEED, {"name": "Ursula K. Le Guin"})
                refs = [named["createAuthor"]["authorId"], named["createCategory"]["categoryId"]]
                refs.append(named["createPublisher"]["publisherId"])
                await subscriber.wait_for(refs)
                spans.clear()
                book: dict[str, Any] = {
                    "name": "The Dispossessed",
                    "description": "Shevek.",
                    "price": "11.00",
                }
                book |= {"priceSale": None, "authorIds": [refs[0]]}
                book |= {"categoryId": refs[1], "publisherId": refs[2]}
                created = await post(app, state, token, CREATE_BOOK, {"input": book})
                await subscriber.wait_for([created["createBook"]["bookId"]])
                command = next(s for s in spans.get_finished_spans() if s.name == "command CreateBook")
                assert command.context is not None
                trace = await settled(spans, command.context.trace_id)
            finally:
                await subscriber.stop()
    finally:
        tracing.uninstall()
        provider.shutdown()
    print_tree(trace)


if __name__ == "__main__":
    asyncio.run(main())
