"""Bookworm against the floor: the same closed-loop load on both, in alternating rounds; one table.

Usage:
    python bench/compare.py [--processes 1] [--concurrency 32] [--duration 5] [--rounds 3]
                            [--measures reads,writes] [--books 300] [--floor ../shared/floor]

Starts the floor app given by --floor with N uvicorn workers and `bookworm serve` with N API processes
(and its worker), each on a fresh database of the PostgreSQL at BOOKWORM_DATABASE_URL (default the
machine's) and on the Redis at BOOKWORM_REDIS_URL (Bookworm under an unused key prefix). It seeds Bookworm,
then runs each operation in rounds, Bookworm then floor: a warm-up second, then --duration seconds of
C connections each sending one request after another (bench/_lean.py). Prints medians over the rounds;
bench/README.md ("Against the floor") explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from subprocess import PIPE
from typing import Any, TypeVar

import httpx
from _compare_table import Comparison, Round, Writes, print_report
from _cpu import TreeProbe
from _floor import floor_server
from _graphql import CREATE, CREATE_BOOK, book_ids, create_refs
from _lag import ReadModelClock
from _lean import Connection, Endpoint, Operation, Requests, closed_loop, cycling, numbered, string_field
from _scratch import database_of, scratch_database, scratch_prefix
from _server import TREE, Server, bookworm_server

from app.eventstore.position import Position

WARMUP = 1.0
CATCH_UP_TIMEOUT = 120.0
SEED_TIMEOUT = 300.0
MEASURES = ("reads", "writes")
MACHINE_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"
FLOOR_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "floor"
FLOOR_BOOKS = 10_000  # the floor seeds books 1..10000
BOOK = "query($id: ID!) { book(id: $id) { id name price status version } }"
BOOKS = "{ books(first: 20) { edges { node { id name price status version } } } }"
CREATE_AUTHOR = CREATE % ("createAuthor", "CreateAuthorSuccess", "authorId position")
T = TypeVar("T")
FRESH = {"Cache-Control": "no-cache"}  # the uncached rows: the response cache is not used at all
CAUGHT_UP = "{ __typename }"  # sent with Bookworm-Position: answered once every read model has it


@dataclass(frozen=True)
class Side:
    """One server under load: where to send, whose CPU to read."""

    endpoint: Endpoint
    probe: TreeProbe


@dataclass
class Positions:
    """The positions Bookworm's mutation answers returned, each with the perf_counter of its answer."""

    seen_all: list[tuple[str, float]] = field(default_factory=list)

    def seen(self, body: bytes, at: float) -> None:
        position = string_field(body, b"position")
        if position is not None:
            self.seen_all.append((position, at))

    def newest(self) -> str:
        return str(max(Position.parse(p) for p, _ in self.seen_all))

    def since(self, start: float) -> list[str]:
        """The positions answered at or after `start` (the measured window, not the warm-up)."""
        return [p for p, at in self.seen_all if at >= start]


async def measure(side: Side, operation: Operation, args: argparse.Namespace) -> Round:
    """Warm up, then load `side` for args.duration s."""
    connections = [Connection(side.endpoint) for _ in range(args.concurrency)]
    try:
        await closed_loop(connections, operation, WARMUP)
        before = side.probe.read()
        outcome = await closed_loop(connections, operation, args.duration)
        after = side.probe.read()
    finally:
        for connection in connections:
            connection.close()
    return Round.of(outcome, before, after)


async def caught_up(endpoint: Endpoint, position: str, since: float) -> float:
    """Seconds from `since` until every read model of Bookworm has applied `position`."""
    request = endpoint.graphql(CAUGHT_UP, {}, {"Bookworm-Position": position})
    connection = Connection(endpoint)
    try:
        while time.perf_counter() - since < CATCH_UP_TIMEOUT:
            status, _ = await connection.exchange(request)  # held until then, 503 after a few seconds
            if status == b"200":
                return time.perf_counter() - since
    finally:
        connection.close()
    raise SystemExit(f"Bookworm's read models did not reach {position} in {CATCH_UP_TIMEOUT:g} s")


async def alternate(
    comparison: Comparison,
    rounds: int,
    bookworm_round: Callable[[], Awaitable[Round]],
    floor_round: Callable[[], Awaitable[Round]],
) -> Comparison:
    """Run `rounds` rounds on each side in turn, Bookworm first."""
    for number in range(1, rounds + 1):
        comparison.bookworm.append(await bookworm_round())
        comparison.floor.append(await floor_round())
        comparison.announce(number)
    return comparison


async def compare_reads(
    bookworm: Side, floor: Side, ids: list[str], floor_book: str, args: argparse.Namespace
) -> list[Comparison]:
    """book(id) and books(first: 20) against the floor's by-id query."""

    def by_id(headers: dict[str, str]) -> Operation:
        requests = [bookworm.endpoint.graphql(BOOK, {"id": i}, headers) for i in ids]
        return Operation(cycling(requests), b'"name"')

    def page(headers: dict[str, str]) -> Operation:
        return Operation(cycling([bookworm.endpoint.graphql(BOOKS, {}, headers)]), b'"node"')

    floor_requests = [
        floor.endpoint.graphql(floor_book, {"id": str(i)}, {}) for i in range(1, FLOOR_BOOKS + 1)
    ]
    floor_by_id = Operation(cycling(floor_requests), b'"name"')
    return [
        await alternate(
            Comparison(label),
            args.rounds,
            partial(measure, bookworm, operation, args),
            partial(measure, floor, floor_by_id, args),
        )
        for label, operation in (
            ("`book(id)` / `book(id)`", by_id(FRESH)),
            ("`books(first: 20)` / `book(id)` *", page(FRESH)),
            ("`book(id)` cached / `book(id)`", by_id({})),
            ("`books(first: 20)` cached / `book(id)` *", page({})),
        )
    ]


async def compare_writes(
    bookworm: Side,
    clock: ReadModelClock,
    floor: Side,
    auth: dict[str, str],
    book_input: Callable[[str], Any],
    floor_append: str,
    args: argparse.Namespace,
) -> list[Comparison]:
    """createAuthor and createBook against the floor's appendEvent, with Bookworm's projection lag."""
    tag = os.urandom(3).hex()
    append = Operation(
        numbered(floor.endpoint, floor_append, lambda slot: {"s": f"compare-{tag}-{slot}", "v": 0}, {}),
        b'"AppendEventSuccess"',
    )
    authors = numbered(bookworm.endpoint, CREATE_AUTHOR, lambda slot: {"name": f"Compare {tag} {slot}"}, auth)
    books = numbered(
        bookworm.endpoint, CREATE_BOOK, lambda slot: {"input": book_input(f"Compare {tag} {slot}")}, auth
    )
    found = []
    for label, requests, success in (
        ("`createAuthor` / `appendEvent`", authors, b'"CreateAuthorSuccess"'),
        ("`createBook` / `appendEvent`", books, b'"CreateBookSuccess"'),
    ):
        writes = Writes()
        bookworm_round = _lagging(bookworm, clock, requests, success, writes, args)
        comparison = Comparison(label, writes)
        found.append(
            await alternate(comparison, args.rounds, bookworm_round, partial(measure, floor, append, args))
        )
    return found


def _lagging(
    bookworm: Side,
    clock: ReadModelClock,
    requests: Requests,
    success: bytes,
    writes: Writes,
    args: argparse.Namespace,
) -> Callable[[], Awaitable[Round]]:
    """A round of Bookworm writes; then each write's lag, and how long the read models took after it."""

    async def measure_round() -> Round:
        positions = Positions()
        done = await measure(bookworm, Operation(requests, success, positions.seen), args)
        writes.after_round(done, await caught_up(bookworm.endpoint, positions.newest(), done.ended))
        writes.lagged.extend(await clock.lags(positions.since(done.ended - done.elapsed)))
        return done

    return measure_round


async def seed(server: Server, books: int) -> str:
    """Run `bookworm seed --books N` on the server's PostgreSQL and Redis; return what it printed."""
    command = [sys.executable, "-m", "app.cli", "seed", "--books", str(books)]
    process = await asyncio.create_subprocess_exec(
        *command, env=server.env, stdout=PIPE, stderr=PIPE, cwd=TREE
    )
    try:
        async with asyncio.timeout(SEED_TIMEOUT):
            out, err = await process.communicate()
    except TimeoutError:
        raise SystemExit(f"bookworm seed --books {books} did not finish in {SEED_TIMEOUT:g} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise SystemExit(f"bookworm seed failed: {err.decode().strip()[-500:]}")
    return out.decode().strip()


async def prepare(server: Server, endpoint: Endpoint, auth: dict[str, str], books: int) -> list[str]:
    """Seed Bookworm, wait until every read model has it all; return the books' ids."""
    started = time.perf_counter()
    print(await seed(server, books), end=" ")
    after_seed = endpoint.graphql(CREATE_AUTHOR, {"name": f"Compare {os.urandom(3).hex()}"}, auth)
    connection = Connection(endpoint)
    try:
        status, body = await connection.exchange(after_seed)
    finally:
        connection.close()
    position = string_field(body, b"position")
    if status != b"200" or position is None:
        raise SystemExit(f"createAuthor failed: {body[:300]!r}")
    await caught_up(endpoint, position, time.perf_counter())
    print(f"({time.perf_counter() - started:.1f} s, read models caught up)")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await book_ids(http, books)


async def run(args: argparse.Namespace) -> list[Comparison]:
    """Start both servers on fresh databases, run the chosen measures, stop everything."""
    database_url = os.environ.get("BOOKWORM_DATABASE_URL") or MACHINE_DATABASE
    redis_url = os.environ.get("BOOKWORM_REDIS_URL") or MACHINE_REDIS
    async with AsyncExitStack() as stack:
        bookworm_database = await stack.enter_async_context(scratch_database(database_url, "bench_compare"))
        floor_database = await stack.enter_async_context(scratch_database(database_url, "bench_floor"))
        prefix = await stack.enter_async_context(scratch_prefix(redis_url, "bench-compare"))
        os.environ.update(
            BOOKWORM_DATABASE_URL=bookworm_database,
            BOOKWORM_REDIS_URL=redis_url,
            BOOKWORM_REDIS_PREFIX=prefix,
            BOOKWORM_API_PROCESSES=str(args.processes),
        )
        # One load generator stands for many clients: Bookworm's per-client limit would measure itself.
        os.environ.setdefault("BOOKWORM_CLIENT_REQUESTS_RUNNING", str(args.concurrency))
        server = stack.enter_context(bookworm_server())
        floor_app = stack.enter_context(floor_server(args.floor, args.processes, floor_database, redis_url))
        bookworm = Side(
            Endpoint.of(f"{server.url}/graphql"),
            TreeProbe(server.pid, database_of(bookworm_database)),
        )
        floor = Side(Endpoint.of(floor_app.url), TreeProbe(floor_app.pid, database_of(floor_database)))
        auth = {"Authorization": f"Bearer {server.admin_token()}"}
        ids = await prepare(server, bookworm.endpoint, auth, args.books)
        found: list[Comparison] = []
        if "reads" in args.measures:
            found += await compare_reads(bookworm, floor, ids, floor_app.query("floor_book"), args)
        if "writes" in args.measures:
            async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth) as http:
                refs = await create_refs(http)
            clock = await ReadModelClock.start(bookworm_database)
            stack.push_async_callback(clock.close)
            found += await compare_writes(
                bookworm, clock, floor, auth, refs.book_input, floor_app.query("floor_append"), args
            )
        return found


def _measures(text: str) -> tuple[str, ...]:
    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    if not chosen or set(chosen) - set(MEASURES):
        raise argparse.ArgumentTypeError(f"choose among {','.join(MEASURES)}")
    return chosen


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--processes", type=_positive, default=1, help="server processes per side (default 1)"
    )
    parser.add_argument("--concurrency", type=_positive, default=32, help="connections per side (default 32)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (default 5)")
    parser.add_argument(
        "--rounds", type=_positive, default=3, help="rounds per side and operation (default 3)"
    )
    parser.add_argument("--measures", type=_measures, default=MEASURES, help="reads,writes (default both)")
    parser.add_argument(
        "--books", type=_positive, default=300, help="books seeded into Bookworm (default 300)"
    )
    parser.add_argument(
        "--floor", type=Path, default=FLOOR_DIR, help="the floor's directory (default ../shared/floor)"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # progress shows as it comes
    started = time.perf_counter()
    command = shlex.join(["python", "bench/compare.py", *sys.argv[1:]])
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"Bookworm against the floor, {when}, Python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"Command: {command}")
    load_before = os.getloadavg()
    found = _run(run(args))
    print_report(found, args, load_before)
    print(f"\nTotal time {time.perf_counter() - started:.0f} s.")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on uvloop when it is installed (a cheaper event loop for the load generator)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    main()
