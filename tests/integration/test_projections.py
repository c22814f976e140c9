"""The catalog projection against real PostgreSQL: views, read.changes, fan-out, rebuild, status."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.bus.lease import Lease
from app.db import create_pool
from app.events import catalog as ev
from app.events.base import Event, Metadata
from app.events.basket import BasketItemAdded
from app.eventstore import START, EventStore, Position, RecordedEvent
from app.ids import new_id
from app.live.notices import CATALOG_TOPIC, ChangeNotice, book_topic
from app.projections import PROJECTIONS, ProjectionConsumer
from app.projections.base import table_prefix
from app.projections.catalog import CATALOG
from app.projections.rebuild import RebuildInProgress, RebuildRejected, UnknownProjection, rebuild
from app.projections.status import ProjectionStatus, projection_status, purge_changes
from app.queries.books import BookFilter
from app.queries.catalog import CatalogQueries
from app.queries.history import stream_history
from app.settings import Settings
from tests.integration.draining import WITHIN, drain


@dataclass
class Catalog:
    """Appends catalog events the way command handlers do, and projects them like the bus runner."""

    pool: asyncpg.Pool
    store: EventStore
    versions: dict[str, int] = dataclasses.field(default_factory=dict)
    books: dict[str, ev.BookUpdated] = dataclasses.field(default_factory=dict)
    last: Position = START

    async def emit(self, stream_id: str, stream_type: str, *events: Event) -> Position:
        version = self.versions.get(stream_id, 0)
        async with self.pool.acquire() as conn, conn.transaction():
            position = await self.store.append(
                conn,
                stream_id=stream_id,
                stream_type=stream_type,
                expected_version=version,
                events=events,
                metadata=Metadata(actor="test", correlation_id=new_id()),
            )
        self.versions[stream_id] = version + len(events)
        self.last = max(self.last, position)
        return position

    async def author(self, name: str) -> str:
        author_id = new_id()
        await self.emit(author_id, "Author", ev.AuthorCreated(author_id=author_id, name=name))
        return author_id

    async def category(self, name: str) -> str:
        category_id = new_id()
        await self.emit(category_id, "Category", ev.CategoryCreated(category_id=category_id, name=name))
        return category_id

    async def publisher(self, name: str) -> str:
        publisher_id = new_id()
        await self.emit(publisher_id, "Publisher", ev.PublisherCreated(publisher_id=publisher_id, name=name))
        return publisher_id

    async def book(
        self,
        name: str,
        *,
        authors: tuple[str, ...],
        category: str,
        publisher: str,
        price: str = "10.00",
        description: str | None = None,
    ) -> str:
        book_id = new_id()
        created = ev.BookCreated(
            book_id=book_id,
            name=name,
            description=description,
            price=Decimal(price),
            price_sale=None,
            category_id=category,
            publisher_id=publisher,
            author_ids=authors,
        )
        self.books[book_id] = ev.BookUpdated(**dataclasses.asdict(created), status="IN_STOCK")
        await self.emit(book_id, "Book", created)
        return book_id

    async def update_book(self, book_id: str, **changes: Any) -> Position:
        updated = dataclasses.replace(self.books[book_id], **changes)
        self.books[book_id] = updated
        return await self.emit(book_id, "Book", updated)

    async def project(
        self, consumer: ProjectionConsumer | None = None, limit: int = 100
    ) -> list[ChangeNotice]:
        """Run consumer batches until all we appended is applied; return the notices they made."""
        consumer = consumer or ProjectionConsumer(CATALOG)
        return (await drain(self.pool, self.store, consumer, self.last, limit=limit)).notices


@dataclass
class Fresh:
    pool: asyncpg.Pool
    store: EventStore
    catalog: Catalog
    queries: CatalogQueries


async def _fresh(settings: Settings) -> AsyncIterator[Fresh]:
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    store = EventStore(pool)
    yield Fresh(pool, store, Catalog(pool, store), CatalogQueries(pool))
    await pool.close()


@pytest.fixture(scope="module")
async def db(make_settings: Callable[[], Settings]) -> AsyncIterator[Fresh]:
    """One empty store for this module's tests; each test uses entities of its own."""
    async for fresh in _fresh(make_settings()):
        yield fresh


@pytest.fixture
async def empty(make_settings: Callable[[], Settings]) -> AsyncIterator[Fresh]:
    """An empty store of the test's own, for tests that look at the whole read model."""
    async for fresh in _fresh(make_settings()):
        yield fresh


async def _basics(c: Catalog) -> tuple[str, str, str]:
    return await c.author("Ursula Le Guin"), await c.category("Fantasy"), await c.publisher("Ace")


def _only(category: str) -> BookFilter:
    return BookFilter(category_ids=[category])


async def _changes(pool: asyncpg.Pool, entity_id: str) -> list[tuple[str, str, str]]:
    rows = await pool.fetch(
        "SELECT topic, kind, entity FROM read.changes WHERE entity_id = $1 ORDER BY topic", entity_id
    )
    return [(r["topic"], r["kind"], r["entity"]) for r in rows]


async def test_created_entities_appear_in_the_views_with_notices_and_changes(db: Fresh) -> None:
    author, category, publisher = await _basics(db.catalog)
    book = await db.catalog.book(
        "A Wizard of Earthsea", authors=(author,), category=category, publisher=publisher, price="12.50"
    )
    notices = await db.catalog.project()

    (row,) = await db.queries.books_by_ids([book])
    assert row is not None
    assert (row.name, row.price, row.status, row.version) == (
        "A Wizard of Earthsea",
        Decimal("12.50"),
        "IN_STOCK",
        1,
    )
    assert (row.category_name, row.publisher_name, row.author_names) == (
        "Fantasy",
        "Ace",
        ("Ursula Le Guin",),
    )
    assert (row.average_rating, row.total_reviews) == (0.0, 0)
    assert row.created_at == row.updated_at
    (cat,) = await db.queries.categories_by_ids([category])
    assert cat is not None and cat.book_count == 1
    assert {(n.topic, n.kind, n.entity, n.entity_id) for n in notices} == {
        (CATALOG_TOPIC, "CREATED", "Author", author),
        (CATALOG_TOPIC, "CREATED", "Category", category),
        (CATALOG_TOPIC, "CREATED", "Publisher", publisher),
        (CATALOG_TOPIC, "CREATED", "Book", book),
        (book_topic(book), "CREATED", "Book", book),
    }
    assert await _changes(db.pool, book) == [
        (book_topic(book), "CREATED", "Book"),
        (CATALOG_TOPIC, "CREATED", "Book"),
    ]
    stored = await db.pool.fetchrow(
        "SELECT transaction_id, global_position FROM read.changes WHERE entity_id = $1 LIMIT 1", book
    )
    book_notice = next(n for n in notices if n.entity_id == book)
    assert Position(stored[0], stored[1]) == book_notice.position


async def test_author_rename_fans_out_keeping_the_position(db: Fresh) -> None:
    c = db.catalog
    first, category, publisher = await _basics(c)
    second = await c.author("Second Author")
    both = await c.book("Shared", authors=(first, second), category=category, publisher=publisher)
    alone = await c.book("Alone", authors=(second,), category=category, publisher=publisher)
    other = await c.book("Other", authors=(first,), category=category, publisher=publisher)
    await c.project()

    await c.emit(second, "Author", ev.AuthorRenamed(author_id=second, name="Renamed Author"))
    notices = await c.project()

    rows = await db.queries.books_by_ids([both, alone, other])
    assert [r.author_names if r else None for r in rows] == [
        ("Ursula Le Guin", "Renamed Author"),
        ("Renamed Author",),
        ("Ursula Le Guin",),
    ]
    assert all(r is not None and r.version == 1 for r in rows)
    assert {(n.topic, n.entity, n.entity_id) for n in notices} == {
        (CATALOG_TOPIC, "Author", second),
        (book_topic(both), "Book", both),
        (book_topic(alone), "Book", alone),
    }
    assert {n.kind for n in notices} == {"UPDATED"}
    (author_row,) = await db.queries.authors_by_ids([second])
    assert author_row is not None and (author_row.name, author_row.version) == ("Renamed Author", 2)
    found = await db.queries.list_books(search="renamed", filter=_only(category))
    assert {e.node.id for e in found.items} == {both, alone}


async def test_category_and_publisher_renames_fan_out(db: Fresh) -> None:
    c = db.catalog
    author, category, publisher = await _basics(c)
    book = await c.book("Fan Out", authors=(author,), category=category, publisher=publisher)
    await c.project()

    await c.emit(category, "Category", ev.CategoryRenamed(category_id=category, name="Speculative"))
    await c.emit(publisher, "Publisher", ev.PublisherRenamed(publisher_id=publisher, name="Tor"))
    notices = await c.project()

    (row,) = await db.queries.books_by_ids([book])
    assert row is not None and (row.category_name, row.publisher_name) == ("Speculative", "Tor")
    assert [(n.topic, n.entity) for n in notices] == [
        (CATALOG_TOPIC, "Category"),
        (book_topic(book), "Book"),
        (CATALOG_TOPIC, "Publisher"),
        (book_topic(book), "Book"),
    ]
    found = await db.queries.list_books(search="speculative tor", filter=_only(category))
    assert [e.node.id for e in found.items] == [book]


async def test_book_update_and_soft_delete(db: Fresh) -> None:
    c = db.catalog
    author, category, publisher = await _basics(c)
    other_category = await c.category("Horror")
    book = await c.book("Draft", authors=(author,), category=category, publisher=publisher)
    await c.project()
    (before,) = await db.queries.books_by_ids([book])

    await c.update_book(
        book,
        name="Final",
        price=Decimal("20.00"),
        price_sale=Decimal("15.00"),
        status="OUT_OF_STOCK",
        category_id=other_category,
    )
    notices = await c.project()
    (after,) = await db.queries.books_by_ids([book])
    assert before is not None and after is not None
    assert (after.name, after.price, after.price_sale, after.status) == (
        "Final",
        Decimal("20.00"),
        Decimal("15.00"),
        "OUT_OF_STOCK",
    )
    assert (after.category_id, after.category_name, after.version) == (other_category, "Horror", 2)
    assert after.created_at == before.created_at and after.updated_at > before.updated_at
    assert {(n.topic, n.kind) for n in notices} == {(CATALOG_TOPIC, "UPDATED"), (book_topic(book), "UPDATED")}
    counts = {r.id: r.book_count for r in await db.queries.categories_by_ids([category, other_category]) if r}
    assert counts == {category: 0, other_category: 1}

    await c.emit(book, "Book", ev.BookDeleted(book_id=book))
    notices = await c.project()
    assert await db.queries.books_by_ids([book]) == [None]
    assert {(n.topic, n.kind) for n in notices} == {(CATALOG_TOPIC, "DELETED"), (book_topic(book), "DELETED")}
    (cat,) = await db.queries.categories_by_ids([other_category])
    assert cat is not None and cat.book_count == 0
    assert (await db.queries.list_books(filter=_only(other_category))).total_count == 0


async def test_deleted_entities_leave_the_views(db: Fresh) -> None:
    c = db.catalog
    author, category, publisher = await _basics(c)
    await c.project()
    await c.emit(author, "Author", ev.AuthorDeleted(author_id=author))
    await c.emit(category, "Category", ev.CategoryDeleted(category_id=category))
    await c.emit(publisher, "Publisher", ev.PublisherDeleted(publisher_id=publisher))
    notices = await c.project()

    assert await db.queries.authors_by_ids([author]) == [None]
    assert await db.queries.categories_by_ids([category]) == [None]
    assert await db.queries.publishers_by_ids([publisher]) == [None]
    assert category not in {r.id for r in await db.queries.list_categories()}
    assert publisher not in {r.id for r in await db.queries.list_publishers()}
    assert [(n.kind, n.entity) for n in notices] == [
        ("DELETED", "Author"),
        ("DELETED", "Category"),
        ("DELETED", "Publisher"),
    ]


async def test_reapplying_events_changes_and_announces_nothing(db: Fresh) -> None:
    c = db.catalog
    author, category, publisher = await _basics(c)
    book = await c.book("Once", authors=(author,), category=category, publisher=publisher)
    await c.emit(author, "Author", ev.AuthorRenamed(author_id=author, name="First Name"))
    await c.emit(author, "Author", ev.AuthorRenamed(author_id=author, name="Second Name"))
    await c.project()
    (before,) = await db.queries.books_by_ids([book])

    history = [e for stream in (author, book) for e in await db.store.read_stream(stream)]
    async with db.pool.acquire() as conn, conn.transaction():
        generation = await conn.fetchval("SELECT generation FROM read.projections WHERE name = 'catalog'")
        notices = [n for e in history for n in await CATALOG.apply(conn, e, f"catalog_g{generation}_")]
    assert notices == []
    assert await db.queries.books_by_ids([book]) == [before]


async def test_a_batch_runs_its_statements_in_order_and_announces_each_applied_one(db: Fresh) -> None:
    c = db.catalog
    author, category, publisher = await _basics(c)
    await c.project()
    start = c.last
    one = await c.book("One", authors=(author,), category=category, publisher=publisher)
    two = await c.book("Two", authors=(author,), category=category, publisher=publisher)
    # The same book twice in a row: one run cannot hold both (their rows are found by id).
    await c.update_book(one, name="One, again")
    await c.update_book(one, name="One, at last")
    await c.emit(two, "Book", ev.BookDeleted(book_id=two))
    third = await c.author("Third")
    events = await db.store.read_all(start, limit=100)
    assert len(events) == 6
    consumer = ProjectionConsumer(CATALOG)
    async with db.pool.acquire() as conn, conn.transaction():
        notices = await consumer.apply(conn, events)
        again = await consumer.apply(conn, events)  # every write is guarded: nothing applies twice
    kinds = [("CREATED", one), ("CREATED", two), ("UPDATED", one), ("UPDATED", one), ("DELETED", two)]
    expected = [
        (event.position, topic, kind)
        for event, (kind, book) in zip(events, kinds, strict=False)
        for topic in (CATALOG_TOPIC, book_topic(book))
    ]
    expected.append((events[-1].position, CATALOG_TOPIC, "CREATED"))
    assert [(n.position, n.topic, n.kind) for n in notices] == expected
    assert notices[-1].entity_id == third and again == []
    (book,) = await db.queries.books_by_ids([one])
    assert book is not None and (book.name, book.version) == ("One, at last", 3)
    assert await db.queries.books_by_ids([two]) == [None]


async def _visible(store: EventStore, after: Position, last: Position) -> list[RecordedEvent]:
    """The events after `after`, once a commit-order reader sees them up to `last` (an older transaction
    anywhere in the database, an autovacuum's say, holds them back meanwhile)."""
    deadline = asyncio.get_running_loop().time() + WITHIN
    while True:
        events = await store.read_all(after)
        if events and events[-1].position >= last:
            return events
        assert asyncio.get_running_loop().time() < deadline, "appended events never became visible"
        await asyncio.sleep(0.01)


async def test_a_batch_plans_each_of_its_statements_once(make_settings: Callable[[], Settings]) -> None:
    settings = make_settings()
    pool = await create_pool(settings.database_url or "", size=1)  # one session: its statements are ours
    try:
        store = EventStore(pool)
        c = Catalog(pool, store)
        author, category, publisher = await _basics(c)
        await c.project()
        lease = Lease(pool, CATALOG.name, settings.lease_ttl)
        assert await lease.try_acquire()
        consumer, applied = ProjectionConsumer(CATALOG), c.last
        for n in range(8):  # a batch each, as the runner applies them one by one when writes are slow
            await c.book(f"Book {n}", authors=(author,), category=category, publisher=publisher)
            events = await _visible(store, applied, c.last)
            async with pool.acquire() as conn, conn.transaction():
                await consumer.begin_batch(conn, lease, events[-1].position)
                await consumer.apply(conn, events)
            applied = events[-1].position
        # PostgreSQL plans a prepared statement for its values at each of its first five executions, and for
        # good whenever a plan for the values looks cheaper than its generic plan (a new book's does).
        plans = await pool.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE $1",
            "%INSERT INTO read.catalog_g1_books%",  # a parameter: this query's own text does not match
        )
        assert plans is not None and (plans["generic_plans"], plans["custom_plans"]) == (8, 0)
    finally:
        await pool.close()


async def test_a_batch_keeps_the_gin_pending_lists_short_and_leaves_the_session_alone(
    make_settings: Callable[[], Settings],
) -> None:
    settings = make_settings()
    pool = await create_pool(settings.database_url or "", size=1)
    try:
        lease = Lease(pool, CATALOG.name, settings.lease_ttl)
        assert await lease.try_acquire()
        default = await pool.fetchval("SELECT current_setting('gin_pending_list_limit')")
        assert default != "64kB"
        async with pool.acquire() as conn, conn.transaction():
            await ProjectionConsumer(CATALOG).begin_batch(conn, lease, START)
            assert await conn.fetchval("SELECT current_setting('gin_pending_list_limit')") == "64kB"
        assert await pool.fetchval("SELECT current_setting('gin_pending_list_limit')") == default
    finally:
        await pool.close()


async def test_rebuild_swaps_while_queries_keep_answering(empty: Fresh) -> None:
    c, queries = empty.catalog, empty.queries
    author, category, publisher = await _basics(c)
    books = [
        await c.book(f"Book {i:02}", authors=(author,), category=category, publisher=publisher)
        for i in range(30)
    ]
    await c.emit(author, "Author", ev.AuthorRenamed(author_id=author, name="Before Rebuild"))
    await c.project()
    changes_before = await empty.pool.fetchval("SELECT count(*) FROM read.changes")
    stop = asyncio.Event()
    answers: list[int] = []

    async def keep_querying() -> None:
        while not stop.is_set():
            page = await queries.list_books(first=50)
            assert page.total_count >= 30 and len(page.items) >= 30
            assert len(await queries.list_categories()) == 1
            answers.append(len(page.items))
            await asyncio.sleep(0)

    async def keep_writing() -> None:
        for i in range(5):
            books.append(await c.book(f"Late {i}", authors=(author,), category=category, publisher=publisher))
            await c.project(limit=1)
            await asyncio.sleep(0.005)

    reader = asyncio.create_task(keep_querying())
    report, _ = await asyncio.gather(
        rebuild(empty.pool, empty.store, "catalog", batch_size=3), keep_writing()
    )
    await c.project()
    stop.set()
    await reader

    assert (report.old_generation, report.new_generation) == (1, 2)
    assert len(answers) > 1
    page = await queries.list_books(first=100)
    assert sorted(e.node.id for e in page.items) == sorted(books)
    assert {e.node.author_names for e in page.items} == {("Before Rebuild",)}
    (cat,) = await queries.categories_by_ids([category])
    assert cat is not None and cat.book_count == 35
    tables = await empty.pool.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'catalog\\_g%'")
    assert {t["tablename"] for t in tables} == {
        f"catalog_g2_{t}" for t in ("books", "authors", "categories", "publishers")
    }
    unanalyzed = await empty.pool.fetchval(
        "SELECT count(*) FROM pg_stat_user_tables"
        " WHERE relname LIKE 'catalog\\_g2\\_%' AND last_analyze IS NULL"
    )
    assert unanalyzed == 0  # the planner has statistics before the views point at the new tables
    # Only the live consumer's five new books were logged (two topics each); the rebuild wrote nothing.
    assert await empty.pool.fetchval("SELECT count(*) FROM read.changes") == changes_before + 10
    status = await _catalog_status(empty)
    assert (status.generation, status.lag, status.rebuild_needed) == (2, 0, False)


async def test_rebuild_reads_up_to_the_checkpoint_past_the_last_event_it_handles(empty: Fresh) -> None:
    c = empty.catalog
    author, category, publisher = await _basics(c)
    book = await c.book("Handled", authors=(author,), category=category, publisher=publisher)
    customer = new_id()
    added = BasketItemAdded(basket_id=customer, customer_id=customer, book_id=book, quantity=1)
    await c.emit(customer, "Basket", added)  # the catalog handles no basket event
    await c.project()

    report = await rebuild(empty.pool, empty.store, "catalog", batch_size=2)

    assert report.position == str(c.last)
    assert (report.events, report.applied) == (5, 4)
    status = await _catalog_status(empty)
    assert (status.generation, status.lag) == (2, 0)
    (found,) = await empty.queries.books_by_ids([book])
    assert found is not None and found.name == "Handled"


async def test_rebuild_refuses_unknown_and_concurrent_rebuilds(db: Fresh) -> None:
    with pytest.raises(UnknownProjection):
        await rebuild(db.pool, db.store, "nope")
    async with db.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext('rebuild:catalog'))")
        try:
            with pytest.raises(RebuildInProgress):
                await rebuild(db.pool, db.store, "catalog")
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('rebuild:catalog'))")
    assert "catalog" in PROJECTIONS


async def test_a_rebuilt_generation_has_the_indexes_and_constraints_of_a_migrated_one(empty: Fresh) -> None:
    migrated = {name: await _schema(empty.pool, table_prefix(name, 1)) for name in PROJECTIONS}

    rebuilt = {name: (await rebuild(empty.pool, empty.store, name)).new_generation for name in PROJECTIONS}

    assert {name: await _schema(empty.pool, table_prefix(name, g)) for name, g in rebuilt.items()} == migrated
    foreign_key = "constraint lines_basket_id_fkey FOREIGN KEY (basket_id) REFERENCES read.baskets(id)"
    assert foreign_key in migrated["basket"]


async def test_a_rebuild_whose_tables_break_a_constraint_keeps_the_current_ones(empty: Fresh) -> None:
    c, customer = empty.catalog, new_id()
    for basket in (new_id(), new_id()):  # the read model holds one basket per customer
        added = BasketItemAdded(basket_id=basket, customer_id=customer, book_id=new_id(), quantity=1)
        await c.emit(basket, "Basket", added)
    deadline = asyncio.get_running_loop().time() + WITHIN
    while await empty.store.head() < c.last:  # other databases' transactions hold commit order back
        assert asyncio.get_running_loop().time() < deadline, "the appended events never became visible"
        await asyncio.sleep(0.01)
    # As if the live consumer had parked the second basket's event and gone on.
    await empty.pool.execute(
        "UPDATE read.projections SET transaction_id = $1, global_position = $2 WHERE name = 'basket'",
        c.last.transaction_id,
        c.last.global_position,
    )

    with pytest.raises(RebuildRejected, match=rf"customer_id_key.*\({customer}\) is duplicated") as rejected:
        await rebuild(empty.pool, empty.store, "basket")

    assert "\n" not in str(rejected.value)  # the CLI prints one line

    tables = await empty.pool.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'basket\\_g%'")
    assert {t["tablename"] for t in tables} == {f"basket_g1_{t}" for t in ("baskets", "lines", "books")}
    assert "basket_g1_" in await empty.pool.fetchval("SELECT pg_get_viewdef('read.basket_view')")
    (status,) = [s for s in await projection_status(empty.pool, empty.store) if s.name == "basket"]
    assert status.generation == 1


_SCHEMA = """
SELECT 'index ' || replace(indexdef, $1, '') FROM pg_indexes
WHERE schemaname = 'read' AND starts_with(tablename, $1)
UNION ALL
SELECT 'constraint ' || replace(c.conname || ' ' || pg_get_constraintdef(c.oid), $1, '')
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE t.relnamespace = 'read'::regnamespace AND starts_with(t.relname, $1)
ORDER BY 1"""


async def _schema(pool: asyncpg.Pool, prefix: str) -> list[str]:
    """Return a generation's indexes and constraints, with the generation's prefix left out."""
    return [row[0] for row in await pool.fetch(_SCHEMA, prefix)]


async def _catalog_status(fresh: Fresh) -> ProjectionStatus:
    (status,) = [s for s in await projection_status(fresh.pool, fresh.store) if s.name == "catalog"]
    return status


async def test_status_reports_lag_in_events(empty: Fresh) -> None:
    c = empty.catalog
    status = await _catalog_status(empty)
    assert (status.name, status.generation, status.version, status.lag) == ("catalog", 1, 1, 0)
    assert status.position == status.head == str(START)

    await _basics(c)
    # Bounded poll: other transactions on the server may hide new events for a moment.
    for _ in range(1000):
        status = await _catalog_status(empty)
        if status.lag == 3:
            break
        await asyncio.sleep(0.01)
    assert status.lag == 3 and status.position == str(START)
    assert status.head == str(c.last)

    await c.project(limit=2)
    status = await _catalog_status(empty)
    assert status.lag == 0 and status.position == status.head


async def test_purge_changes_drops_only_old_rows(db: Fresh) -> None:
    old_id, new_id_ = new_id(), new_id()
    await db.pool.execute(
        """INSERT INTO read.changes
               (topic, transaction_id, global_position, kind, entity, entity_id, recorded_at)
           VALUES ('test', 1, 1, 'CREATED', 'Test', $1, $3), ('test', 1, 2, 'CREATED', 'Test', $2, now())""",
        old_id,
        new_id_,
        dt.datetime.now(dt.UTC) - dt.timedelta(days=8),
    )
    assert await purge_changes(db.pool, 7.0) == 1
    assert await db.pool.fetchval("SELECT count(*) FROM read.changes WHERE topic = 'test'") == 1


async def test_stream_history_lists_a_streams_events(db: Fresh) -> None:
    author = await db.catalog.author("Historic")
    await db.catalog.emit(author, "Author", ev.AuthorRenamed(author_id=author, name="Historic Too"))
    history = await stream_history(db.store, author)
    assert [(e.event_type, e.stream_version) for e in history] == [("AuthorCreated", 1), ("AuthorRenamed", 2)]
    assert await stream_history(db.store, new_id()) == []
