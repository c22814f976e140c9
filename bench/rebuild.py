"""How fast `bookworm projections rebuild` replays a large event store, per projection.

Usage:
    python bench/rebuild.py [--events 150000] [--projections catalog,basket,ordering,rating] [--repeat 1]

Against BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL (both required): a scratch database is created,
migrated, filled and dropped. It appends about --events events of a shop's mix through
EventStore.append (a catalog of authors, categories, publishers and books with price changes and a few
renames and deletes; feedback, some withdrawn; basket sessions ending in a checkout or a clear; buyers
and their orders, completed or cancelled), then moves every projection's checkpoint to the head, as if
its worker had caught up. Each projection is then rebuilt --repeat times by the command itself, in a
subprocess, and `bookworm verify` must find every rebuilt read model equal to a replay.

Columns: the events the rebuild replayed (the whole store, up to the checkpoint), of which the
projection handles (the only ones it reads from the server; the benchmark fails unless the command
applied exactly those the store holds), the command's own figures (seconds from its start to the views'
swap and the old tables dropped, events per second of the whole store), and the command's wall time
with interpreter start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
from _scratch import scratch_database, scratch_prefix

from app.commands.writes import Append
from app.db import migrate
from app.events import basket as bev
from app.events import catalog as cev
from app.events import ordering as oev
from app.events import rating as rev
from app.events.base import Event, Metadata
from app.eventstore import EventStore
from app.projections import PROJECTIONS

APPENDS_PER_TRANSACTION = 200
WRITERS = 4
_REPORTED = re.compile(r"(\d+) events replayed \((\d+) handled\).* in ([\d.]+) s \(([\d,]+) events/s\)")
_HEAD = """
UPDATE read.projections SET (transaction_id, global_position) = (
    SELECT transaction_id::text::bigint, global_position FROM eventstore.events
    ORDER BY transaction_id DESC, global_position DESC LIMIT 1)"""


@dataclass
class Shop:
    """The entities generated so far, so that later events refer to real ones."""

    rng: random.Random
    books: list[str] = field(default_factory=list)
    prices: dict[str, Decimal] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def append(self, stream_id: str, stream_type: str, *events: Event) -> Append:
        version = self.versions.get(stream_id, 0)
        self.versions[stream_id] = version + len(events)
        return Append(stream_id, stream_type, version, events)


def _id() -> str:
    return str(uuid.uuid4())


def catalog(shop: Shop, books: int) -> Iterator[Append]:
    """Named entities, then books (most updated once), then a few renames and deletes."""
    rng = shop.rng
    named: dict[str, list[str]] = {}
    for kind, created, count in (
        ("Category", cev.CategoryCreated, 20),
        ("Publisher", cev.PublisherCreated, 40),
        ("Author", cev.AuthorCreated, max(books // 10, 20)),
    ):
        named[kind] = [_id() for _ in range(count)]
        field_name = f"{kind.lower()}_id"
        for i, entity in enumerate(named[kind]):
            yield shop.append(entity, kind, created(**{field_name: entity, "name": f"{kind} {i}"}))
    for i in range(books):
        book, price = _id(), Decimal(rng.randrange(500, 6000)) / 100
        shop.books.append(book)
        shop.prices[book] = price
        fields = {
            "book_id": book,
            "name": f"Book {i}",
            "description": "A book generated for the rebuild benchmark.",
            "price": price,
            "price_sale": None,
            "category_id": rng.choice(named["Category"]),
            "publisher_id": rng.choice(named["Publisher"]),
            "author_ids": tuple(rng.sample(named["Author"], rng.randint(1, 3))),
        }
        events: list[Event] = [cev.BookCreated(**fields)]
        if rng.random() < 0.8:
            events.append(
                cev.BookUpdated(**{**fields, "price_sale": price * Decimal("0.9"), "status": "IN_STOCK"})
            )
        yield shop.append(book, "Book", *events)
    for author in rng.sample(named["Author"], len(named["Author"]) // 20):
        yield shop.append(author, "Author", cev.AuthorRenamed(author_id=author, name=f"Renamed {author[:8]}"))
    for book in rng.sample(shop.books, len(shop.books) // 50):
        yield shop.append(book, "Book", cev.BookDeleted(book_id=book))


def feedback(shop: Shop) -> Append:
    """One piece of feedback, withdrawn one time in ten."""
    rng, feedback_id, book = shop.rng, _id(), shop.rng.choice(shop.books)
    rating = rng.randint(1, 5)
    created = rev.FeedbackCreated(
        feedback_id=feedback_id,
        book_id=book,
        customer_id=_id(),
        first_name="Ada",
        last_name="Reader",
        comment="Generated for the rebuild benchmark.",
        rating=rating,
    )
    if rng.random() < 0.1:
        deleted = rev.FeedbackDeleted(feedback_id=feedback_id, book_id=book, rating=rating, reason=None)
        return shop.append(feedback_id, "Feedback", created, deleted)
    return shop.append(feedback_id, "Feedback", created)


def session(shop: Shop, customer: str) -> Iterator[Append]:
    """A basket session: a few books added, a quantity changed, maybe one removed, then checkout or clear."""
    rng, basket = shop.rng, f"{customer[:-4]}b0b0"
    chosen = rng.sample(shop.books, rng.randint(2, 4))
    quantities = {book: rng.randint(1, 3) for book in chosen}
    events: list[Event] = [
        bev.BasketItemAdded(basket_id=basket, customer_id=customer, book_id=book, quantity=quantity)
        for book, quantity in quantities.items()
    ]
    changed = chosen[0]
    quantities[changed] += 1
    events.append(
        bev.BasketItemQuantityChanged(
            basket_id=basket, customer_id=customer, book_id=changed, quantity=quantities[changed]
        )
    )
    if rng.random() < 0.3:
        removed = chosen.pop()
        del quantities[removed]
        events.append(bev.BasketItemRemoved(basket_id=basket, customer_id=customer, book_id=removed))
    if rng.random() < 0.15:
        events.append(bev.BasketCleared(basket_id=basket, customer_id=customer))
        yield shop.append(basket, "Basket", *events)
        return
    order = _id()
    lines = tuple(bev.CheckedOutLine(book_id=b, quantity=q) for b, q in quantities.items())
    events.append(bev.BasketCheckedOut(basket_id=basket, customer_id=customer, order_id=order, lines=lines))
    yield shop.append(basket, "Basket", *events)
    yield from placed(shop, customer, order, basket, quantities)


def placed(
    shop: Shop, customer: str, order: str, basket: str, quantities: dict[str, int]
) -> Iterator[Append]:
    """The buyer's address (on a first order) and the order, completed or cancelled."""
    address = {"name": "Ada Reader", "email": "ada@example.com", "street": "1 Main St", "city": "Halifax"}
    if customer not in shop.versions:
        yield shop.append(
            customer, "Buyer", oev.BuyerAddressUpdated(buyer_id=customer, province="NS", **address)
        )
    lines = tuple(
        oev.OrderLine(book_id=b, name="Book", quantity=q, unit_price=shop.prices[b])
        for b, q in quantities.items()
    )
    total = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    placed_event = oev.OrderPlaced(
        order_id=order,
        buyer_id=customer,
        buyer_name=address["name"],
        buyer_email=address["email"],
        basket_id=basket,
        street=address["street"],
        city=address["city"],
        province="NS",
        note=None,
        lines=lines,
        total=total,
    )
    ended: Event = (
        oev.OrderCompleted(order_id=order, buyer_id=customer)
        if shop.rng.random() < 0.9
        else oev.OrderCancelled(order_id=order, buyer_id=customer, reason="changed my mind")
    )
    yield shop.append(order, "Order", placed_event, ended)


def shop_events(events: int, seed: int = 14) -> tuple[list[Append], list[Append]]:
    """Return (catalog appends, the rest interleaved) of about `events` events in all."""
    shop = Shop(random.Random(seed))
    first = list(catalog(shop, books=max(events // 25, 50)))
    customers = [_id() for _ in range(max(events // 40, 10))]
    rest: list[Append] = []
    total = sum(len(a.events) for a in first)
    while total < events:
        appends = (
            [feedback(shop)] if shop.rng.random() < 0.6 else list(session(shop, shop.rng.choice(customers)))
        )
        rest += appends
        total += sum(len(a.events) for a in appends)
    return first, rest


async def write(pool: asyncpg.Pool, store: EventStore, appends: Sequence[Append]) -> None:
    """Append in transactions of APPENDS_PER_TRANSACTION, in order (a stream's appends follow each other)."""
    metadata = Metadata(actor="bench", correlation_id=_id())
    async with pool.acquire() as conn:
        for start in range(0, len(appends), APPENDS_PER_TRANSACTION):
            async with conn.transaction():
                for a in appends[start : start + APPENDS_PER_TRANSACTION]:
                    await store.append(
                        conn,
                        stream_id=a.stream_id,
                        stream_type=a.stream_type,
                        expected_version=a.expected_version,
                        events=a.events,
                        metadata=metadata,
                    )


def by_stream(appends: Sequence[Append], writers: int) -> list[list[Append]]:
    """Split appends among writers so that each stream stays with one writer, in order."""
    shares: list[list[Append]] = [[] for _ in range(writers)]
    for a in appends:
        shares[hash(a.stream_id) % writers].append(a)
    return shares


async def fill(url: str, events: int) -> dict[str, int]:
    """Append the shop's events and move every checkpoint to the head; return counts handled, by name."""
    first, rest = shop_events(events)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=WRITERS)
    try:
        store = EventStore(pool)
        await write(pool, store, first)
        await asyncio.gather(*(write(pool, store, share) for share in by_stream(rest, WRITERS)))
        await pool.execute(_HEAD)
        return {
            name: await pool.fetchval(
                "SELECT count(*) FROM eventstore.events WHERE event_type = ANY($1::text[])",
                sorted(projection.handles),
            )
            for name, projection in PROJECTIONS.items()
        }
    finally:
        await pool.close()


async def bookworm(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run the command; return its wall time and output (failing the benchmark if it fails)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "bookworm", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode()
    if process.returncode != 0:
        sys.exit(f"bookworm {' '.join(args)} failed:\n{text}")
    return time.perf_counter() - started, text


async def main(args: argparse.Namespace) -> None:
    database, redis = os.environ.get("BOOKWORM_DATABASE_URL"), os.environ.get("BOOKWORM_REDIS_URL")
    if not database or not redis:
        sys.exit("set BOOKWORM_DATABASE_URL and BOOKWORM_REDIS_URL")
    async with (
        scratch_database(database, "bench_rebuild") as url,
        scratch_prefix(redis, "bench-rebuild") as prefix,
    ):
        await asyncio.to_thread(migrate, url)
        started = time.perf_counter()
        handled = await fill(url, args.events)
        print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
        env = {**os.environ, "BOOKWORM_DATABASE_URL": url, "BOOKWORM_REDIS_PREFIX": prefix}
        print(f"{'projection':<10} {'events':>8} {'handled':>8} {'s':>7} {'events/s':>9} {'wall s':>7}")
        for name in args.projections.split(","):
            for _ in range(args.repeat):
                wall, output = await bookworm(env, "projections", "rebuild", name)
                found = _REPORTED.search(output)
                if found is None:
                    sys.exit(f"no figures in the output of the rebuild:\n{output}")
                replayed, applied, seconds, rate = found.groups()
                if int(applied) != handled[name]:
                    sys.exit(
                        f"the rebuild applied {applied} events, the store holds {handled[name]}:\n{output}"
                    )
                print(
                    f"{name:<10} {replayed:>8} {handled[name]:>8} {seconds:>7} {rate:>9} {wall:>7.2f}",
                    flush=True,
                )
        _, verified = await bookworm(env, "verify")
        print(verified.strip())


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=150_000, help="about this many events (default 150000)")
    parser.add_argument("--projections", default=",".join(PROJECTIONS), help="comma-separated, in this order")
    parser.add_argument("--repeat", type=int, default=1, help="rebuilds of each projection (default 1)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
