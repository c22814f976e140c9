"""How long API transactions hold a transaction id under load, sampled from pg_stat_activity.

Usage:
    BOOKWORM_DATABASE_URL=... BOOKWORM_REDIS_URL=... python bench/transactions.py \
        [--customers 8] [--events 1800] [--writers 6] [--readers 4] [--duration 10] [--books 300]

Any transaction holding a transaction id holds back every commit-order reader of all events on the
server (the relay, every projection, read-your-writes). This starts `bookworm serve --no-workers` and one
`bookworm worker` (so the API's connections are its own), seeds the catalog, and gives --customers
customers a basket of --events events (appended straight to the event store: a basket used for years).
Then, for --duration seconds at once: --writers workers send addBasketItem with an idempotency key to
those baskets, --readers workers send book searches, and one worker sends addBasketItem asking for the
basket back (read-your-writes) to a fresh customer's basket. Meanwhile a sampler reads pg_stat_activity
every ~5 ms and records, per transaction, how long it had held its id (now() - xact_start). API
transactions are those named `bookworm-api`, or, for a server that names none, those on the API
process's own sockets. Prints the load table and the transactions table; bench/README.md explains them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx
import psutil
from _cpu import CpuProbe
from _graphql import BOOKS, book_ids, failure
from _load import Operation, Row, client, print_table, run_load, sign_in
from _server import SEPARATE_WORKER, backends, bookworm_server, percentile
from _shop import ADD_BASKET_ITEM, ADD_BASKET_ITEM_READ_YOUR_WRITES, Customer, sign_customers

from app.db import plain_url
from app.events.base import Event, Metadata
from app.events.basket import BasketItemAdded, BasketItemRemoved
from app.eventstore import EventStore
from app.ids import basket_id_of, customer_id_of

API_APPLICATION = "bookworm-api"
SAMPLE_EVERY = 0.005  # seconds between two looks at pg_stat_activity
PORTS_EVERY = 0.25  # seconds between two looks at the API process's sockets
APPEND_CHUNK = 500
SEARCHES = ["the", "a", "of", "book", "an", "in"]
_HOLDERS = """
SELECT pid, backend_xid::text AS xid, application_name, client_port,
       extract(epoch FROM clock_timestamp() - xact_start) * 1000 AS held_ms
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND datname = current_database() AND pid <> pg_backend_pid()
"""


@dataclass
class Holders:
    """What the sampler saw: the longest each transaction was seen holding its id, API and others."""

    samples: int = 0
    api: dict[tuple[int, str], float] = field(default_factory=dict)
    others: dict[tuple[int, str], float] = field(default_factory=dict)
    named: bool = False  # whether the API named its connections

    def see(self, row: asyncpg.Record, api_ports: set[int]) -> None:
        named = row["application_name"] == API_APPLICATION
        self.named = self.named or named
        seen = self.api if named or row["client_port"] in api_ports else self.others
        key = (row["pid"], row["xid"])
        seen[key] = max(seen.get(key, 0.0), float(row["held_ms"]))


async def sample(url: str, api_pid: int, stop: asyncio.Event, holders: Holders) -> None:
    """Look at pg_stat_activity every SAMPLE_EVERY seconds until `stop` is set."""
    conn = await asyncpg.connect(plain_url(url), server_settings={"application_name": "bench-sampler"})
    ports, ports_at = api_ports(api_pid), time.perf_counter()
    try:
        while not stop.is_set():
            for row in await conn.fetch(_HOLDERS):
                holders.see(row, ports)
            holders.samples += 1
            if time.perf_counter() - ports_at > PORTS_EVERY:
                ports, ports_at = api_ports(api_pid), time.perf_counter()
            await asyncio.sleep(SAMPLE_EVERY)
    finally:
        await conn.close()


def api_ports(pid: int) -> set[int]:
    """Return the local TCP ports of the API's connections: the process and its children (API processes
    of a supervising `serve --no-workers`), their PostgreSQL clients among them."""
    ports: set[int] = set()
    try:
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            ports |= {c.laddr.port for c in process.net_connections(kind="tcp") if c.raddr}
    except psutil.Error:
        pass
    return ports


async def grow_baskets(url: str, customers: list[Customer], events: int) -> None:
    """Give each customer's basket `events` events: a book put in and taken out again, over and over."""
    pool = await asyncpg.create_pool(plain_url(url), min_size=1, max_size=2)
    store = EventStore(pool)
    try:
        for customer in customers:
            customer_id = customer_id_of(customer.sub)
            ids = {"basket_id": basket_id_of(customer_id), "customer_id": customer_id}
            book = str(uuid.uuid4())
            history: list[Event] = [
                BasketItemAdded(**ids, book_id=book, quantity=1)
                if n % 2 == 0
                else BasketItemRemoved(**ids, book_id=book)
                for n in range(events)
            ]
            for start in range(0, events, APPEND_CHUNK):
                async with pool.acquire() as conn, conn.transaction():
                    await store.append(
                        conn,
                        stream_id=ids["basket_id"],
                        stream_type="Basket",
                        expected_version=start,
                        events=history[start : start + APPEND_CHUNK],
                        metadata=Metadata(actor="bench", correlation_id=str(uuid.uuid4())),
                    )
    finally:
        await pool.close()


async def wait_caught_up(url: str, limit: float = 300.0) -> None:
    """Wait until every projection has passed the newest event (the worker digests the grown baskets)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            behind = await conn.fetchval(
                "SELECT count(*) FROM read.projections p WHERE (p.transaction_id, p.global_position) < "
                "(SELECT transaction_id::text::bigint, global_position FROM eventstore.events "
                " ORDER BY transaction_id DESC, global_position DESC LIMIT 1)"
            )
            if behind == 0:
                return
            await asyncio.sleep(0.5)
        raise SystemExit(f"the projections did not catch up within {limit:g} s")
    finally:
        await conn.close()


def add_item(customers: list[Customer], books: list[str], query: str, *, keyed: bool) -> Operation:
    """Return addBasketItem: request n puts one of book n // C into customer n mod C's basket."""

    async def send(http: httpx.AsyncClient, number: int) -> str | None:
        customer = customers[number % len(customers)]
        item: dict[str, object] = {"bookId": books[(number // len(customers)) % len(books)], "quantity": 1}
        if keyed:
            item["idempotencyKey"] = str(uuid.uuid4())
        response = await http.post(
            "/graphql", json={"query": query, "variables": {"input": item}}, headers=customer.headers
        )
        return failure(response, "addBasketItem", "AddBasketItemSuccess")

    return send


async def search_books(http: httpx.AsyncClient, number: int) -> str | None:
    variables = {"search": SEARCHES[number % len(SEARCHES)], "orderBy": None, "after": None}
    response = await http.post("/graphql", json={"query": BOOKS, "variables": variables})
    return failure(response)


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    holders: Holders = field(default_factory=Holders)


async def measure(
    url: str, database_url: str, api_pid: int, args: argparse.Namespace, env: dict[str, str]
) -> Run:
    """Set up the customers and their baskets, then run the three loads and the sampler together."""
    run = Run()
    async with client(url) as http:
        books = await book_ids(http, 50)
    if not books:
        raise SystemExit("seeding made no books")
    long_baskets = sign_customers(env, f"tx-{uuid.uuid4().hex[:6]}", args.customers)
    fresh = sign_customers(env, f"tx-fresh-{uuid.uuid4().hex[:6]}", args.customers)
    grown = time.perf_counter()
    await grow_baskets(database_url, long_baskets, args.events)
    await wait_caught_up(database_url)
    took = time.perf_counter() - grown
    print(f"{args.customers} baskets of {args.events} events appended and projected ({took:.1f} s)")
    probe = CpuProbe.of(api_pid, env)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(database_url, api_pid, stop, run.holders))
    loads = {
        "addBasketItem with key, long basket": (
            add_item(long_baskets, books, ADD_BASKET_ITEM, keyed=True),
            args.writers,
        ),
        "books(search) first 20": (search_books, args.readers),
        "addBasketItem read-your-writes, new basket": (
            add_item(fresh, books, ADD_BASKET_ITEM_READ_YOUR_WRITES, keyed=False),
            1,
        ),
    }
    try:
        samples = await asyncio.gather(
            *(
                run_load(url, operation, concurrency=c, duration=args.duration, probe=probe)
                for operation, c in loads.values()
            )
        )
    finally:
        stop.set()
        await sampler
    for (name, (_, concurrency)), result in zip(loads.items(), samples, strict=True):
        run.rows.append(Row.of(name, concurrency, result))
        if result.errors:
            run.errors[name] = result.errors
    return run


def print_holders(holders: Holders) -> None:
    """Print one row per kind of transaction: how many were seen holding an id, and for how long."""
    how = "application_name bookworm-api" if holders.named else "the API process's sockets"
    every = f"~{SAMPLE_EVERY * 1000:g} ms apart"
    print(f"\nTransactions holding a transaction id ({holders.samples} samples, {every}; API ones by {how})")
    header = f"{'transactions':<34}{'seen':>7}{'longest ms':>12}{'p99 ms':>9}{'median ms':>11}"
    print(header)
    print("-" * len(header))
    for name, seen in (("API (serve --no-workers)", holders.api), ("others (worker, CLI)", holders.others)):
        held = sorted(seen.values())
        if not held:
            print(f"{name:<34}{0:>7}{'-':>12}{'-':>9}{'-':>11}")
            continue
        print(
            f"{name:<34}{len(held):>7}{held[-1]:>12.1f}{percentile(held, 0.99):>9.1f}"
            f"{statistics.median(held):>11.1f}"
        )


def revision() -> str:
    """Name the code the server runs: the checkout `python -m app.cli` imports here, and its commit."""
    where = "import app, pathlib; print(pathlib.Path(app.__file__).resolve().parent.parent)"
    root = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True).stdout.strip()
    done = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return f"{root} @ {done.stdout.strip()[:80] or 'unknown'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=8, help="customers with a long basket (default 8)")
    parser.add_argument("--events", type=int, default=1800, help="events in each long basket (default 1800)")
    parser.add_argument("--writers", type=int, default=6, help="concurrent keyed addBasketItem (default 6)")
    parser.add_argument("--readers", type=int, default=4, help="concurrent book searches (default 4)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    parser.add_argument("--books", type=int, default=300, help="books to seed (default 300)")
    args = parser.parse_args()
    database_url = os.environ.get("BOOKWORM_DATABASE_URL")
    if not database_url or not os.environ.get("BOOKWORM_REDIS_URL"):
        raise SystemExit(
            "set BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL: the sampler reads that PostgreSQL"
        )
    os.environ[SEPARATE_WORKER] = "1"  # the API process alone, so that its connections are its own
    started = time.perf_counter()
    print(f"Bookworm transactions, {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}")
    print(f"Server code: {revision()}")
    with bookworm_server() as server:
        print(f"`bookworm serve --no-workers` on {server.url}, one `bookworm worker`; {backends(server.env)}")
        sign_in(server.admin_token())
        print(server.run_cli("seed", "--books", str(args.books)).strip())
        run = asyncio.run(measure(server.url, database_url, server.pid, args, server.env))
    print()
    print_table(run.rows)
    for name, errors in run.errors.items():
        print(f"errors in {name}: " + ", ".join(f"{kind} x{n}" for kind, n in errors.most_common()))
    print_holders(run.holders)
    print(f"\nTotal time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
