"""What traces cost on the by-id query: `book(id)` through the ASGI app with tracing off and on.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... BOOKWORM_REDIS_URL=redis://... \\
        python bench/tracing.py [--requests 1000] [--rounds 5] [--modes off,on,sampled,statements]

In this process, no server: a scratch database and Redis prefix, the container with its workers, and
two copies of the ASGI app, one built with tracing off and one with it on. Each round sends --requests
`book(id)` queries one after another straight to the ASGI callable (no HTTP client in the way), off and
on alternately, so both see the same machine; the response cache is off, so every query reads
PostgreSQL. "on" records every span with the SDK and a batch span processor, and its exporter encodes
each batch to OTLP protobuf as the OTLP exporter does, then drops it (no collector to wait
on); a round ends once the spans it queued are exported (timed with it), so the figures include the
whole cost in this process; "sampled" records one trace in ten (the rest still pass
through the instrumentations, unrecorded); "unrecorded" records none (what tracing costs a request
that sampling leaves out, on its own); "statements" is "on" with BOOKWORM_TRACE_READ_STATEMENTS, a
span for each statement of the query as well. Prints, per mode, the median round's wall time and CPU
time (this process only) per request, the best round's CPU time (the round the machine's other work
added least to: read it on a busy machine), and each one's ratio to "off". With `--modes off` it does
not import app.tracing, so it runs against a version without traces too: that gives "off" against no
tracing code.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench's own helpers (_scratch)

from _scratch import scratch_database, scratch_prefix

from app.bootstrap import Container, container
from app.db import migrate
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.main import create_app
from app.memory import freeze_startup_objects
from app.settings import Settings

SECRET = "bench-tracing-secret-of-thirty-two-bytes"
BOOK = "query($id: ID!) { book(id: $id) { id name price category { name } authors { name } } }"
SEED = """
mutation($name: String!) {
  createAuthor(input: {name: $name}) { ... on CreateAuthorSuccess { authorId } }
  createCategory(input: {name: $name}) { ... on CreateCategorySuccess { categoryId } }
  createPublisher(input: {name: $name}) { ... on CreatePublisherSuccess { publisherId } }
}"""
CREATE_BOOK = """
mutation($input: CreateBookInput!) { createBook(input: $input) { ... on CreateBookSuccess { bookId } } }"""

App = Callable[..., Any]
UNLIMITED = 1_000_000_000  # budget points and refill: as compare.py sets them for its servers
# The share of new traces each traced mode records.
SAMPLED = {"on": 1.0, "sampled": 0.1, "statements": 1.0, "unrecorded": 0.0}


async def call(app: App, state: dict[str, Any], body: bytes, token: str) -> bytes:
    """POST `body` to /graphql on the ASGI callable; return the response body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": state,
    }
    sent = False
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the response is built
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(chunks)


async def post(app: App, state: dict[str, Any], token: str, query: str, variables: dict[str, Any]) -> Any:
    body = json.dumps({"query": query, "variables": variables}).encode()
    reply = json.loads(await call(app, state, body, token))
    if "errors" in reply:
        raise RuntimeError(reply["errors"])
    return reply["data"]


async def seed(app: App, state: dict[str, Any], token: str) -> str:
    """Create one book and wait until the read model has it; return its id."""
    named = await post(app, state, token, SEED, {"name": "Ursula K. Le Guin"})
    book = {"name": "The Dispossessed", "description": "Shevek.", "price": "11.00", "priceSale": None}
    book |= {
        "categoryId": named["createCategory"]["categoryId"],
        "publisherId": named["createPublisher"]["publisherId"],
        "authorIds": [named["createAuthor"]["authorId"]],
    }
    book_id: str = (await post(app, state, token, CREATE_BOOK, {"input": book}))["createBook"]["bookId"]
    for _ in range(200):
        if (await post(app, state, token, BOOK, {"id": book_id}))["book"] is not None:
            return book_id
        await asyncio.sleep(0.05)
    raise RuntimeError("the book never reached the read model")


async def round_of(
    app: App, state: dict[str, Any], token: str, body: bytes, requests: int, flush: Callable[[], Any]
) -> tuple[float, float]:
    """Send `requests` queries one after another and export their spans (`flush`); return wall and CPU
    seconds per request."""
    reply = b""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        reply = await call(app, state, body, token)
    flush()  # the spans still queued are encoded now, in this round, not in the next mode's
    timed = (time.perf_counter() - wall) / requests, (time.process_time() - cpu) / requests
    if b'"errors"' in reply:  # a round of refusals (a budget spent, say) would measure the wrong path
        raise RuntimeError(f"the round's last answer is an error: {reply[:300]!r}")
    return timed


def traced_provider(ratio: float) -> Any:
    """An SDK provider sampling `ratio` of new traces, whose exporter encodes each batch to OTLP and drops it.

    As OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=`ratio` would set it up.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from app import tracing

    class Encoding(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            encode_spans(spans).SerializePartialToString()
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=tracing.sampler(ParentBased(TraceIdRatioBased(ratio))))
    provider.add_span_processor(BatchSpanProcessor(Encoding()))
    return provider


async def apps(settings: Settings, modes: list[str]) -> AsyncIterator[tuple[str, App, Callable[[], Any]]]:
    """Yield each mode's app and what exports its spans; the traced modes' apps are built and run with
    tracing installed (removed after)."""
    for mode in modes:
        if mode == "off":
            yield mode, create_app(settings, workers=False), lambda: None
            continue
        from app import tracing

        provider = traced_provider(SAMPLED[mode])
        tracing.install(provider, read_statements=mode == "statements")
        try:
            yield mode, create_app(settings, workers=False), provider.force_flush
        finally:
            tracing.uninstall()
            provider.force_flush()


async def measure(
    args: argparse.Namespace, built: Container, settings: Settings
) -> dict[str, list[tuple[float, float]]]:
    token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
    state = {"container": built}
    modes = args.modes.split(",")
    book_id = await seed(create_app(settings, workers=False), state, token)
    body = json.dumps({"query": BOOK, "variables": {"id": book_id}}).encode()
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    async for _mode, app, flush in apps(settings, modes):
        await round_of(app, state, token, body, args.requests // 4, flush)  # warm-up
    freeze_startup_objects()  # as an API process does once it has started (app/memory.py)
    for _ in range(args.rounds):
        async for mode, app, flush in apps(settings, modes):
            results[mode].append(await round_of(app, state, token, body, args.requests, flush))
    return results


def figures(rounds: list[tuple[float, float]]) -> tuple[float, float, float]:
    """The median round's wall and CPU seconds per request, and the best round's CPU (the round the
    machine's other work added least to)."""
    cpu = [c for _, c in rounds]
    return statistics.median(w for w, _ in rounds), statistics.median(cpu), min(cpu)


def table(results: dict[str, list[tuple[float, float]]]) -> None:
    base = figures(results["off"]) if "off" in results else None
    heads = ("wall µs/req", "CPU µs/req", "best CPU")
    print(f"{'mode':<10} " + " ".join(f"{head:>11} {'vs off':>7}" for head in heads))
    for mode, rounds in results.items():
        mine = figures(rounds)
        ratios = [f"{m / b:7.3f}" for m, b in zip(mine, base, strict=True)] if base else [" " * 7] * 3
        print(f"{mode:<10} " + " ".join(f"{m * 1e6:11.1f} {r}" for m, r in zip(mine, ratios, strict=True)))
    for mode, rounds in results.items():
        print(f"rounds, CPU µs/req, {mode}: " + " ".join(f"{c * 1e6:.0f}" for _, c in rounds))


async def scratch_settings(stack: AsyncExitStack, label: str) -> Settings:
    """Settings of a migrated scratch database and an unused Redis key prefix, both removed when `stack`
    closes (BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL name their servers), with the response cache off.

    One client sends every request: with the default budgets it would be refused within a second, and the
    rounds would measure refusals. As compare.py's servers, the budgets are set out of reach (still
    charged, in Redis, for every request).
    """
    database_url, redis_url = os.environ["BOOKWORM_DATABASE_URL"], os.environ["BOOKWORM_REDIS_URL"]
    scratch = await stack.enter_async_context(scratch_database(database_url, label))
    prefix = await stack.enter_async_context(scratch_prefix(redis_url, label.replace("_", "-")))
    await asyncio.to_thread(migrate, scratch)
    settings = Settings.from_env({"BOOKWORM_DATABASE_URL": scratch, "BOOKWORM_REDIS_URL": redis_url})
    return dataclasses.replace(
        settings,
        redis_prefix=prefix,
        jwt_secret=SECRET,
        response_cache_entries=0,
        budget_capacity=UNLIMITED,
        budget_refill=UNLIMITED,
        write_budget_capacity=UNLIMITED,
        write_budget_refill=UNLIMITED,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="queries per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode, alternating")
    parser.add_argument(
        "--modes",
        default="off,on,sampled,statements",
        help="off (first: the baseline), on, sampled, unrecorded, statements",
    )
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        settings = await scratch_settings(stack, "bench_tracing")
        built = await stack.enter_async_context(container(settings, workers=True))
        results = await measure(args, built, settings)
    print(
        f"book(id), {args.requests} sequential requests per round, {args.rounds} rounds per mode, in process"
    )
    table(results)


if __name__ == "__main__":
    asyncio.run(main())
