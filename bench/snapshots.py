"""What one command costs on a stream of 10, 1,000 and 100,000 events, with and without snapshots.

Usage:
    BOOKWORM_DATABASE_URL=... python bench/snapshots.py [--events 10,1000,100000] [--runs 5] [--every 100]

In this process, against a real PostgreSQL (migrated first; use a fresh database): for each length L a
new basket and a new buyer get L events appended straight to the event store (a customer of many
years), then the command bus runs --runs commands on each: addBasketItem / removeBasketItem in turn on
the basket, updateBuyerAddress with a new street on the buyer. Once with snapshots off
(BOOKWORM_SNAPSHOT_EVERY=0: every command replays the whole stream) and once with a snapshot every
--every events. One command first, not counted, warms up (with snapshots on it replays the stream once
and takes the first snapshot). Prints the median and largest CPU time of this process per command
(decoding and folding the events, deciding, the driver) and the median and largest wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from app.commands.bus import CommandBus
from app.db import migrate, plain_url
from app.domain.basket import commands as b
from app.domain.catalog import commands as c
from app.domain.commands import Command
from app.domain.ordering.commands import UpdateBuyerAddress
from app.events.base import Event, Metadata
from app.events.basket import BasketItemAdded, BasketItemRemoved
from app.events.ordering import BuyerAddressUpdated
from app.eventstore import EventStore
from app.ids import basket_id_of, new_id

ACTOR = "bench"
APPEND_CHUNK = 2_000


@dataclass(frozen=True)
class Case:
    """One aggregate: the history a customer of many years gives it, and the commands timed on it."""

    name: str
    stream_type: str
    stream_id: Callable[[str], str]
    history: Callable[[str, str, int], Event]  # (customer, book, event number) -> event
    command: Callable[[str, str, int], Command]  # (customer, book, run number) -> command


def _basket_event(customer: str, book: str, number: int) -> Event:
    ids = {"basket_id": basket_id_of(customer), "customer_id": customer}
    if number % 2:
        return BasketItemRemoved(**ids, book_id=book)
    return BasketItemAdded(**ids, book_id=book, quantity=1)


def _basket_command(customer: str, book: str, number: int) -> Command:
    if number % 2:
        return b.RemoveBasketItem(customer_id=customer, book_id=book)
    return b.AddBasketItem(customer_id=customer, book_id=book, quantity=1)


def _address(number: int) -> dict[str, Any]:
    return {"name": "Ann", "email": None, "street": f"{number} Rue Haute", "city": "Lyon", "province": "RA"}


CASES = (
    Case("basket: add/remove item", "Basket", basket_id_of, _basket_event, _basket_command),
    Case(
        "buyer: updateBuyerAddress",
        "Buyer",
        lambda customer: customer,
        lambda customer, _, n: BuyerAddressUpdated(buyer_id=customer, **_address(n)),
        lambda customer, _, n: UpdateBuyerAddress(buyer_id=customer, **_address(-1 - n)),
    ),
)


@dataclass(frozen=True)
class Row:
    case: str
    events: int
    snapshots: str
    cpu_ms: list[float]
    wall_ms: list[float]


async def make_book(bus: CommandBus) -> str:
    """Create a category, a publisher, an author and a book that baskets can hold."""
    refs = {"category_id": new_id(), "publisher_id": new_id(), "author_ids": (new_id(),)}
    suffix = new_id()[-12:]
    await bus.dispatch(c.CreateCategory(category_id=refs["category_id"], name=f"Bench {suffix}"), actor=ACTOR)
    await bus.dispatch(
        c.CreatePublisher(publisher_id=refs["publisher_id"], name=f"Bench {suffix}"), actor=ACTOR
    )
    await bus.dispatch(c.CreateAuthor(author_id=refs["author_ids"][0], name="Bench"), actor=ACTOR)
    book = c.CreateBook(book_id=new_id(), name="Bench", price=Decimal("10"), **refs)
    return (await bus.dispatch(book, actor=ACTOR)).entity_id


async def append_history(pool: asyncpg.Pool, case: Case, customer: str, book: str, events: int) -> None:
    store = EventStore(pool)
    for start in range(0, events, APPEND_CHUNK):
        chunk = [case.history(customer, book, n) for n in range(start, min(events, start + APPEND_CHUNK))]
        async with pool.acquire() as conn, conn.transaction():
            await store.append(
                conn,
                stream_id=case.stream_id(customer),
                stream_type=case.stream_type,
                expected_version=start,
                events=chunk,
                metadata=Metadata(actor=ACTOR, correlation_id=new_id()),
            )


async def measure(pool: asyncpg.Pool, case: Case, book: str, events: int, every: int, runs: int) -> Row:
    """Time `runs` commands on a new stream of `events` events (after one that warms up)."""
    bus = CommandBus(pool, EventStore(pool), snapshot_every=every)
    customer = new_id()
    await append_history(pool, case, customer, book, events)
    cpu, wall = [], []
    for run in range(runs + 1):
        # After a history of adds and removes the basket is empty: the first command adds.
        command = case.command(customer, book, run)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await bus.dispatch(command, actor=ACTOR)
        if run > 0:
            cpu.append((time.process_time() - cpu_before) * 1000)
            wall.append((time.perf_counter() - wall_before) * 1000)
    return Row(case.name, events, f"every {every}" if every else "off", cpu, wall)


def print_rows(rows: list[Row]) -> None:
    header = (
        f"{'command':<28}{'events':>8}  {'snapshots':<10}{'cpu ms median':>14}{'max':>8}"
        f"{'wall ms median':>16}{'max':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.case:<28}{row.events:>8}  {row.snapshots:<10}{statistics.median(row.cpu_ms):>14.2f}"
            f"{max(row.cpu_ms):>8.2f}{statistics.median(row.wall_ms):>16.2f}{max(row.wall_ms):>8.2f}"
        )


async def run(url: str, lengths: list[int], runs: int, every: int) -> list[Row]:
    pool = await asyncpg.create_pool(plain_url(url), min_size=1, max_size=2)
    try:
        book = await make_book(CommandBus(pool, EventStore(pool)))
        rows = []
        for case in CASES:
            for events in lengths:
                for snapshot_every in (0, every):
                    rows.append(await measure(pool, case, book, events, snapshot_every, runs))
                    print(
                        f"  {case.name}, {events} events, snapshots {snapshot_every or 'off'}: done",
                        flush=True,
                    )
        return rows
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="10,1000,100000", help="stream lengths (default 10,1000,100000)")
    parser.add_argument("--runs", type=int, default=5, help="timed commands per case (default 5)")
    parser.add_argument("--every", type=int, default=100, help="a snapshot every N events (default 100)")
    args = parser.parse_args()
    url = os.environ.get("BOOKWORM_DATABASE_URL")
    if not url:
        raise SystemExit("set BOOKWORM_DATABASE_URL (a fresh database: it is migrated and filled)")
    started = time.perf_counter()
    print(f"Bookworm snapshots, {time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}")
    migrate(url)
    rows = asyncio.run(run(url, [int(n) for n in args.events.split(",")], args.runs, args.every))
    print()
    print_rows(rows)
    print(f"\nTotal time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
