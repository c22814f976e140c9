"""What traces cost on the by-id query: `book(id)` through the ASGI app with tracing off and on.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... BOOKWORM_REDIS_URL=redis://... \\
        python bench/tracing.py [--requests 400] [--rounds 12] [--modes off,on,sampled,statements]
    ... python bench/tracing.py --instructions [--requests 50] [--rounds 3]   # needs valgrind
    ... python bench/tracing.py --instructions --modes off --query page   # what one request costs, counted

--query book (the default) sends BOOK below; plain and page send compare.py's two reads, `book(id)` with
scalars only and a page of 20 books (20 books are seeded for it). With --modes off it counts what one
request costs, tracing aside: the measure of this project's read-path changes.

In this process, no server: a scratch database and Redis prefix; the container with its workers creates one
book and is closed once the read model has it; then the API's container alone serves the rounds, without
workers, as `bookworm serve`'s API processes run. (Until 2026-12-07 the workers ran beside the rounds: their
polls and lease renewals, idle, took about 0.5 % of a core, a sixth more with the traced modes'
instrumentation in their way; a small bias, but none an API process pays, and under callgrind, which slows
the process fifty-fold while the workers keep their wall-clock schedule, a large one.) Each mode's app is
built once, and each traced mode has one provider for the whole run, as a process has: the SDK with
app.tracing's resource, a batch span processor and an exporter that encodes each batch to OTLP protobuf as
the OTLP exporter does, then drops it (no collector to wait on). A round sends --requests `book(id)`
queries one after another straight to each mode's ASGI callable in turn (no HTTP client in the way; the
order rotates from round to round, and a full collection precedes each mode's turn, so no mode collects
another's garbage); the response cache is off, so every query reads PostgreSQL. A traced mode's turn ends
once the spans it queued are exported (timed with it), so the figures include the whole cost in this
process, the exporter's thread too.

Modes: "off"; "on" records every trace; "sampled" one trace in ten (the rest still pass through the
instrumentations, unrecorded); "unrecorded" none (what tracing costs a request that sampling leaves out, on
its own); "statements" is "on" with BOOKWORM_TRACE_READ_STATEMENTS, a span for each statement of the query
as well. Prints, per mode, the median round's wall and CPU time (this process only) per request, the median
of the rounds' ratios to "off" (each round's turns are a pair: the same minutes of the machine) with the
middle half of those ratios, and the best round's CPU (the round the machine's other work added least to).

CPU time on this project's machine (a virtual machine of 2 cores shared with other work, no hardware
counters) moves by tens of per cent from round to round, so a ratio of medians holds to a few per cent at
best. --instructions counts instead: once the database is seeded, it runs the same rounds in a second
process under valgrind's callgrind (apt-get install valgrind; about a minute per 100 requests and mode),
which writes its counts as each turn starts and ends, and prints instructions per request per mode (every
thread's: the exporter's too) and their paired ratios. Turns of one mode agree within about 1 %; an
instruction that misses the caches weighs as much as one that hits, so the counts complement the time,
they do not replace it.

With `--modes off` it does not import app.tracing, so it runs against a version without traces too: that
gives "off" against no tracing code.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, contextmanager
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
# --query: the document each round sends. "book" (the default) is BOOK; "plain" and "page" are compare.py's
# reads (its by-id query, and a page of 20 books, for which 20 books are seeded).
QUERIES = {
    "book": BOOK,
    "plain": "query($id: ID!) { book(id: $id) { id name price status version } }",
    "page": "{ books(first: 20) { edges { node { id name price status version } } } }",
    "page1": "{ books(first: 1) { edges { node { id name price status version } } } }",
}
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


def book_input(named: dict[str, Any], name: str) -> dict[str, Any]:
    """A CreateBookInput named `name`, whose author, category and publisher are SEED's answer `named`."""
    return {
        "name": name,
        "description": "Shevek.",
        "price": "11.00",
        "priceSale": None,
        "categoryId": named["createCategory"]["categoryId"],
        "publisherId": named["createPublisher"]["publisherId"],
        "authorIds": [named["createAuthor"]["authorId"]],
    }


async def seed(app: App, state: dict[str, Any], token: str, books: int = 1) -> str:
    """Create `books` books and wait until the read model has them all; return the first one's id."""
    named = await post(app, state, token, SEED, {"name": "Ursula K. Le Guin"})
    ids: list[str] = []
    for number in range(books):
        book = book_input(
            named, "The Dispossessed" if number == 0 else f"The Dispossessed, volume {number + 1}"
        )
        ids.append((await post(app, state, token, CREATE_BOOK, {"input": book}))["createBook"]["bookId"])
    for _ in range(200):
        if (await post(app, state, token, BOOK, {"id": ids[-1]}))["book"] is not None:
            return ids[0]
        await asyncio.sleep(0.05)
    raise RuntimeError("the books never reached the read model")


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

    As app.tracing sets one up (its resource) with OTEL_TRACES_SAMPLER=parentbased_traceidratio and
    OTEL_TRACES_SAMPLER_ARG=`ratio`.
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

    sampler = tracing.sampler(ParentBased(TraceIdRatioBased(ratio)))
    provider = TracerProvider(resource=tracing.resource(), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Encoding()))
    return provider


@dataclasses.dataclass(frozen=True)
class Mode:
    """One way of running the app: its name, the app built for it, and the traced modes' provider."""

    name: str
    app: App
    provider: Any = None  # the SDK's TracerProvider; None: tracing off

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()

    def running(self) -> AbstractContextManager[None]:
        """Tracing as this mode has it, for one turn."""
        return installed(self.provider, read_statements=self.name == "statements")


@contextmanager
def installed(provider: Any, *, read_statements: bool) -> Iterator[None]:
    """Tracing on with `provider` inside the block, then off again; nothing at all when it is None."""
    if provider is None:
        yield
        return
    from app import tracing

    tracing.install(provider, read_statements=read_statements)
    try:
        yield
    finally:
        tracing.uninstall()


def build(settings: Settings, name: str) -> Mode:
    """`name`'s app, built with tracing as that mode has it (a traced app's request spans need it then)."""
    if name == "off":
        return Mode(name, create_app(settings, workers=False))
    provider = traced_provider(SAMPLED[name])
    with installed(provider, read_statements=name == "statements"):
        return Mode(name, create_app(settings, workers=False), provider)


async def measure(
    args: argparse.Namespace, built: Container, book_id: str
) -> tuple[dict[str, list[tuple[float, float]]], list[str]]:
    """Each mode's rounds (wall and CPU seconds per request, in round order) and the order of the turns."""
    token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
    state = {"container": built}
    variables = {} if args.query.startswith("page") else {"id": book_id}
    body = json.dumps({"query": QUERIES[args.query], "variables": variables}).encode()
    modes = [build(built.settings, name) for name in args.modes.split(",")]
    for mode in modes:
        with mode.running():
            await round_of(mode.app, state, token, body, max(1, args.requests // 4), mode.flush)  # warm-up
    freeze_startup_objects()  # as an API process does once it has started (app/memory.py)
    results: dict[str, list[tuple[float, float]]] = {mode.name: [] for mode in modes}
    turns: list[str] = []
    for number in range(args.rounds):
        for mode in modes[number % len(modes) :] + modes[: number % len(modes)]:
            gc.collect()
            with mode.running():
                if args.markers:
                    mark()  # what came before the turn (the first time, start-up's threads too) goes aside
                timed = await round_of(mode.app, state, token, body, args.requests, mode.flush)
                if args.markers:
                    mark()  # the turn's count, every thread's
            results[mode.name].append(timed)
            turns.append(mode.name)
    for mode in modes:
        if mode.provider is not None:
            mode.provider.shutdown()
    return results, turns


def mark() -> None:
    """Make callgrind (--dump-before=getpriority) write the counts since its last dump and start again.

    A dump, not a zero, starts each turn too: callgrind zeroes only the calling thread's counters, so the
    first turn would be counted with everything other threads did since start-up (the migrations).
    """
    os.getpriority(os.PRIO_PROCESS, 0)


def ratios(mine: list[float], off: list[float]) -> list[float]:
    """Each round's figure over off's in the same round."""
    return [m / o for m, o in zip(mine, off, strict=True)]


def spread(values: list[float]) -> str:
    """The middle half of `values` (their lowest and highest when fewer than four)."""
    if len(values) < 4:
        return f"{min(values):.3f}-{max(values):.3f}"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.3f}-{high:.3f}"


def table(results: dict[str, list[tuple[float, float]]]) -> None:
    off = [c for _, c in results["off"]] if "off" in results else None
    print(
        f"{'mode':<10} {'wall µs/req':>11} {'CPU µs/req':>10} {'vs off':>7} {'middle half':>11}"
        f" {'best CPU':>8} {'vs off':>7}"
    )
    for mode, rounds in results.items():
        cpu = [c for _, c in rounds]
        wall, median, best = statistics.median(w for w, _ in rounds), statistics.median(cpu), min(cpu)
        paired = ratios(cpu, off) if off else None
        vs = f"{statistics.median(paired):7.3f} {spread(paired):>11}" if paired else " " * 19
        best_vs = f"{best / min(off):7.3f}" if off else ""
        print(f"{mode:<10} {wall * 1e6:11.1f} {median * 1e6:10.1f} {vs} {best * 1e6:8.1f} {best_vs}")
    for mode, rounds in results.items():
        print(f"rounds, CPU µs/req, {mode}: " + " ".join(f"{c * 1e6:.0f}" for _, c in rounds))


def instructions(args: argparse.Namespace, settings: Settings, book_id: str) -> dict[str, list[float]]:
    """Run the rounds under callgrind on `settings`' seeded database; return each mode's instructions per
    request, in round order."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as out:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out"]
        command += ["--dump-before=getpriority", sys.executable, __file__, "--markers"]
        command += [f"--requests={args.requests}", f"--rounds={args.rounds}", f"--modes={args.modes}"]
        command += [f"--query={args.query}"]
        command += [
            f"--database={settings.database_url}",
            f"--prefix={settings.redis_prefix}",
            f"--book={book_id}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the run under valgrind failed:\n{done.stderr[-3000:]}")
        turns: list[str] = json.loads(done.stdout.splitlines()[-1])
        dumps = sorted(Path(out).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        if os.environ.get("KEEP_DUMPS"):
            for d in dumps:
                shutil.copy(d, os.environ["KEEP_DUMPS"])
        counts = [_summary(path) / args.requests for path in dumps[1::2]]  # each turn's end
    if len(dumps) != 2 * len(turns):
        raise SystemExit(f"{len(dumps)} dumps for {len(turns)} turns: does something else call getpriority?")
    found: dict[str, list[float]] = {}
    for name, count in zip(turns, counts, strict=True):
        found.setdefault(name, []).append(count)
    return found


def _summary(dump: Path) -> int:
    """The instructions a callgrind dump counted."""
    for line in dump.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"no summary in {dump}")


def instruction_table(counts: dict[str, list[float]]) -> None:
    off = counts.get("off")
    print(f"{'mode':<10} {'instructions/req':>16} {'vs off':>7} {'lowest-highest':>14}")
    for mode, rounds in counts.items():
        paired = ratios(rounds, off) if off else None
        vs = f"{statistics.median(paired):7.3f} {min(paired):6.3f}-{max(paired):.3f}" if paired else ""
        print(f"{mode:<10} {statistics.median(rounds):16,.0f} {vs}")
    for mode, rounds in counts.items():
        print(f"rounds, instructions/req, {mode}: " + " ".join(f"{c:,.0f}" for c in rounds))


async def seeded(settings: Settings, books: int) -> str:
    """Create the books with the workers running, and return the first one's id once the read model has
    them all."""
    token = issue(SECRET, subject="bench", name="Bench", roles=(ADMIN, CUSTOMER))
    async with container(settings, workers=True) as built:
        return await seed(create_app(settings, workers=False), {"container": built}, token, books)


async def scratch_settings(stack: AsyncExitStack, label: str) -> Settings:
    """Settings of a migrated scratch database and an unused Redis key prefix, both removed when `stack`
    closes (BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL name their servers), as bench_settings makes them.
    """
    database_url, redis_url = os.environ["BOOKWORM_DATABASE_URL"], os.environ["BOOKWORM_REDIS_URL"]
    scratch = await stack.enter_async_context(scratch_database(database_url, label))
    prefix = await stack.enter_async_context(scratch_prefix(redis_url, label.replace("_", "-")))
    await asyncio.to_thread(migrate, scratch)
    return bench_settings(scratch, prefix)


def bench_settings(database_url: str, prefix: str) -> Settings:
    """Settings of `database_url` and Redis (BOOKWORM_REDIS_URL) under `prefix`, with the response cache off.

    One client sends every request: with the default budgets it would be refused within a second, and the
    rounds would measure refusals. As compare.py's servers, the budgets are set out of reach (still
    charged, in Redis, for every request).
    """
    redis_url = os.environ["BOOKWORM_REDIS_URL"]
    settings = Settings.from_env({"BOOKWORM_DATABASE_URL": database_url, "BOOKWORM_REDIS_URL": redis_url})
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
    parser.add_argument("--requests", type=int, default=400, help="queries per round and mode")
    parser.add_argument("--rounds", type=int, default=12, help="rounds; each runs every mode once")
    parser.add_argument(
        "--modes",
        default="off,on,sampled,statements",
        help="off (first: the baseline), on, sampled, unrecorded, statements",
    )
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--query", choices=sorted(QUERIES), default="book", help="what each request asks")
    # The run under callgrind that --instructions starts, on the database it made and seeded: it marks each
    # turn and prints their order.
    for hidden in ("--markers",):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--database", "--prefix", "--book"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        if args.markers:
            settings, book_id = bench_settings(args.database, args.prefix), args.book
        else:
            settings = await scratch_settings(stack, "bench_tracing")
            book_id = await seeded(settings, 20 if args.query.startswith("page") else 1)
        if args.instructions:
            counts = await asyncio.to_thread(instructions, args, settings, book_id)
        else:
            built = await stack.enter_async_context(container(settings, workers=False))
            results, turns = await measure(args, built, book_id)
    rounds = f"{args.requests} sequential requests per round and mode, {args.rounds} rounds"
    if args.instructions:
        print(f"{args.query}, {rounds}, in process under callgrind, no workers: instructions per request")
        instruction_table(counts)
    elif args.markers:
        print(json.dumps(turns))
    else:
        print(f"{args.query}, {rounds}, in process, no workers")
        table(results)


if __name__ == "__main__":
    asyncio.run(main())
