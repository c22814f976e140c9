"""Throughput of one `bookworm serve`: createBook, book(id), books(...) and subscription fan-out.

Usage:
    python bench/throughput.py [--duration 8] [--measures reads,writes,fanout] [--url http://127.0.0.1:8000]

Without --url it starts `bookworm serve` on a free port of 127.0.0.1 (against BOOKWORM_DATABASE_URL /
BOOKWORM_REDIS_URL when they are set, else on embedded servers in a throw-away data directory) and loads
the demo catalog with `bookworm seed` on the same servers. With --url the server must already hold books.
Each measure is a closed loop of C concurrent clients for a fixed time (or, for fan-out, a fixed count).
Prints one results table; bench/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from _cpu import CpuProbe
from _fanout import measure_fanout
from _graphql import BOOK, BOOKS, CREATE_BOOK, CREATE_BOOK_READ_YOUR_WRITES, book_ids, create_refs, failure
from _load import Operation, Row, Sample, client, print_table, run_load, sign_in
from _server import admin_token, backends, bookworm_server, layout

from app.eventstore.position import Position

WARMUP = 1.0
CATCH_UP_TIMEOUT = 120.0
READ_CONCURRENCY = 16
WRITE_CONCURRENCIES = (1, 8, 32)
FANOUT_CONCURRENCY = 4
MEASURES = ("reads", "writes", "fanout")
_UNSHOWN = {"BOOKWORM_DATABASE_URL", "BOOKWORM_REDIS_URL"}
LISTINGS: list[tuple[str | None, str | None]] = [
    (None, "NAME"),
    (None, "PRICE"),
    (None, "NEWEST"),
    (None, "RATING"),
]
SEARCHES: list[tuple[str | None, str | None]] = [
    ("river", "NAME"),
    ("light", "PRICE"),
    ("history", "NEWEST"),
    ("garden", "RATING"),
    ("winter", None),
]


@dataclass
class Bench:
    """Where to send the load, for how long, and the table being filled."""

    url: str
    duration: float
    probe: CpuProbe  # whose CPU time to read
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, Counter[str]] = field(default_factory=dict)

    async def load(
        self, operation: Operation, concurrency: int, *, after_warmup: Callable[[], None] | None = None
    ) -> Sample:
        """Warm up for a second, then measure for self.duration seconds."""
        await run_load(self.url, operation, concurrency=concurrency, duration=WARMUP)
        if after_warmup is not None:
            after_warmup()
        return await run_load(
            self.url, operation, concurrency=concurrency, duration=self.duration, probe=self.probe
        )

    def add(self, measure: str, concurrency: int, sample: Sample) -> None:
        """Add a row for `sample`, and remember the kinds of its errors."""
        self.rows.append(Row.of(measure, concurrency, sample))
        if sample.errors:
            self.errors[f"{measure} (concurrency {concurrency})"] = sample.errors


def _query(query: str, variables: Callable[[int], dict[str, Any]]) -> Operation:
    """Return an operation sending `query` with the variables for each request's number."""

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        response = await http.post("/graphql", json={"query": query, "variables": variables(number)})
        return failure(response)

    return send


async def measure_reads(bench: Bench, books: int) -> None:
    """Measure book(id) and books(...) queries over the books the server holds (once it shows `books`)."""
    async with client(bench.url) as http:
        await _wait_for_books(http, books)
        ids = await book_ids(http, 300)
        if not ids:
            raise SystemExit("the server holds no books: run `bookworm seed` against it first")
    by_id = _query(BOOK, lambda n: {"id": ids[n % len(ids)]})
    print(f"book(id) goes through {len(ids)} ids in turn.")
    sample = await bench.load(by_id, READ_CONCURRENCY)
    bench.add("book(id) + category/publisher/authors", READ_CONCURRENCY, sample)
    for label, combos in (
        ("books(first: 20, orderBy)", LISTINGS),
        ("books(first: 20, search, orderBy)", SEARCHES),
    ):
        listing = _query(BOOKS, _rotating(combos))
        bench.add(label, READ_CONCURRENCY, await bench.load(listing, READ_CONCURRENCY))


def _rotating(combos: list[tuple[str | None, str | None]]) -> Callable[[int], dict[str, Any]]:
    """Return the variables of request n: the combos (search, orderBy) in turn."""

    def variables(number: int) -> dict[str, Any]:
        search, order_by = combos[number % len(combos)]
        return {"search": search, "orderBy": order_by}

    return variables


async def _wait_for_books(http: httpx.AsyncClient, books: int) -> None:
    """Wait (bounded) until the catalog read model lists `books` books: seeding is asynchronous."""
    deadline = time.perf_counter() + CATCH_UP_TIMEOUT
    while time.perf_counter() < deadline:
        response = await http.post("/graphql", json={"query": "{ books(first: 1) { totalCount } }"})
        if response.json()["data"]["books"]["totalCount"] >= books:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the catalog read model did not list {books} books in {CATCH_UP_TIMEOUT:g} s")


async def measure_writes(bench: Bench) -> None:
    """Measure createBook at each concurrency, and how long the catalog projection then needs."""
    async with client(bench.url) as http:
        refs = await create_refs(http)
        suffix = str(time.time_ns())
        for concurrency in WRITE_CONCURRENCIES:
            positions: list[Position] = []
            create = _create(refs.book_input, f"{suffix} c{concurrency}", positions)
            sample = await bench.load(create, concurrency, after_warmup=positions.clear)
            bench.add("createBook", concurrency, sample)
            bench.rows.append(await _catch_up(http, positions, sample, concurrency))
        ryw = _create(refs.book_input, f"{suffix} ryw", None)
        bench.add("createBook + book { } (read-your-writes)", 8, await bench.load(ryw, 8))


def _create(book_input: Callable[[str], Any], prefix: str, positions: list[Position] | None) -> Operation:
    """Return createBook; with `positions` collect them, without ask for the book (read-your-writes)."""
    query = CREATE_BOOK if positions is not None else CREATE_BOOK_READ_YOUR_WRITES

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        variables = {"input": book_input(f"Bench {prefix} {number}")}
        response = await http.post("/graphql", json={"query": query, "variables": variables})
        problem = failure(response, "createBook", "CreateBookSuccess")
        if problem is None and positions is not None:
            positions.append(Position.parse(response.json()["data"]["createBook"]["position"]))
        return problem

    return send


async def _catch_up(
    http: httpx.AsyncClient, positions: list[Position], sample: Sample, concurrency: int
) -> Row:
    """Time from the phase's last response until the catalog read model has applied every book."""
    phase_end = time.perf_counter()
    last = str(max(positions))
    while time.perf_counter() - phase_end < CATCH_UP_TIMEOUT:
        # The server holds this request until the read model reaches the position (503 after 5 s).
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Bookworm-Position": last}
        )
        if response.status_code == 200:
            break
    else:
        raise SystemExit(f"the catalog projection did not reach {last} in {CATCH_UP_TIMEOUT:g} s")
    lag = time.perf_counter() - phase_end
    return Row(
        measure="  catalog projection caught up (ms after)",
        concurrency=concurrency,
        n=len(positions),
        errors=0,
        ops_per_s=len(positions) / (sample.elapsed + lag),
        median_ms=lag * 1000,
        p99_ms=None,
    )


async def run(bench: Bench, args: argparse.Namespace) -> None:
    """Run every measure in turn."""
    if "reads" in args.measures:
        await measure_reads(bench, 0 if args.url else args.books)
    if "writes" in args.measures:
        await measure_writes(bench)
    if "fanout" in args.measures:
        deliveries, mutations = await measure_fanout(
            bench.url,
            subscribers=args.subscribers,
            mutations=args.fanout_mutations,
            concurrency=FANOUT_CONCURRENCY,
            probe=bench.probe,
        )
        bench.add("createBook during fan-out", FANOUT_CONCURRENCY, mutations)
        bench.rows.append(deliveries)


def _describe(server: str) -> None:
    print(f"Bookworm throughput, {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}")
    print(f"Server: {server}")
    # Every other BOOKWORM_* setting that differs from its default (URLs left out: they may hold a password).
    tuned = [
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BOOKWORM_") and k not in _UNSHOWN
    ]
    print(f"Settings: {' '.join(tuned) or 'defaults'}")
    print(
        f"Machine: {os.cpu_count()} cores, shared by the load generator (this process), the server, "
        "PostgreSQL and Redis: the figures are what this box does with all of them on it."
    )


def _measures(text: str) -> tuple[str, ...]:
    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = set(chosen) - set(MEASURES)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose among {','.join(MEASURES)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running Bookworm server holding books; default: start one")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measure (default 8)")
    parser.add_argument("--books", type=int, default=300, help="books to seed (default 300)")
    parser.add_argument("--subscribers", type=int, default=50, help="fan-out subscribers (default 50)")
    parser.add_argument("--fanout-mutations", type=int, default=100, help="fan-out mutations (default 100)")
    parser.add_argument(
        "--measures",
        type=_measures,
        default=MEASURES,
        help=f"comma-separated, any of {','.join(MEASURES)} (default all)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.url:
        _describe(f"the one at {args.url}")
        sign_in(admin_token(os.environ))
        bench = Bench(url=args.url, duration=args.duration, probe=CpuProbe(None))
        asyncio.run(run(bench, args))
    else:
        with bookworm_server() as server:
            _describe(f"`bookworm serve` ({layout(server.env)}) on {server.url}; {backends(server.env)}")
            sign_in(server.admin_token())
            seeding = time.perf_counter()
            print(
                server.run_cli("seed", "--books", str(args.books)).strip(),
                f"({time.perf_counter() - seeding:.1f} s)",
            )
            bench = Bench(url=server.url, duration=args.duration, probe=CpuProbe.of(server.pid, server.env))
            asyncio.run(run(bench, args))
    print()
    print_table(bench.rows)
    for measure, errors in bench.errors.items():
        print(f"errors in {measure}: " + ", ".join(f"{kind} x{n}" for kind, n in errors.most_common()))
    print(f"\nTotal time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
