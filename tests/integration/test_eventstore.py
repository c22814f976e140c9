"""The event store on a real PostgreSQL: concurrent appends, commit-order reads, versions, upcasting."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app.db import as_projector, create_pool, plain_url
from app.events.base import Event, Metadata
from app.events.catalog import (
    AuthorCreated,
    AuthorRenamed,
    BookCreated,
    CategoryCreated,
    CategoryRenamed,
)
from app.eventstore import START, ConcurrencyError, EventStore, Position, RecordedEvent, TargetChanged
from app.ids import new_id
from app.settings import Settings

META = Metadata(actor="test", correlation_id="c")
WRITERS = 8
TRANSACTIONS_PER_WRITER = 12


async def _writer(
    pool: asyncpg.Pool, store: EventStore, written: set[tuple[str, int]], commits: list[Position]
) -> None:
    """Append to fresh streams, holding each transaction open for a random moment before committing."""
    for _ in range(TRANSACTIONS_PER_WRITER):
        stream = new_id()
        events = [AuthorCreated(author_id=stream, name="a")]
        events += [AuthorRenamed(author_id=stream, name=f"a{i}") for i in range(random.randint(0, 2))]
        async with pool.acquire() as conn, conn.transaction():
            last = await store.append(
                conn, stream_id=stream, stream_type="Author", expected_version=0, events=events, metadata=META
            )
            await asyncio.sleep(random.uniform(0, 0.02))
        commits.append(last)
        written.update((stream, v) for v in range(1, len(events) + 1))


async def _reader(
    store: EventStore, after: Position, written: set[tuple[str, int]], done: asyncio.Event
) -> list[tuple[Position, str, int]]:
    """Follow read_all in commit order until everything the writers wrote was seen, or 10 s passed."""
    seen: list[tuple[Position, str, int]] = []
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        batch = await store.read_all(after, limit=50)
        seen += [(r.position, r.stream_id, r.stream_version) for r in batch]
        if batch:
            after = batch[-1].position
        elif done.is_set() and written <= {(stream, version) for _, stream, version in seen}:
            return seen
        else:
            await asyncio.sleep(0.002)
    return seen


async def test_a_commit_order_reader_sees_every_concurrent_append_once(settings: Settings) -> None:
    assert settings.database_url
    pool = await create_pool(settings.database_url, size=WRITERS + 2)
    try:
        store = EventStore(pool)
        written: set[tuple[str, int]] = set()
        commits: list[Position] = []
        done = asyncio.Event()
        reader = asyncio.create_task(_reader(store, await store.head(), written, done))
        await asyncio.gather(*(_writer(pool, store, written, commits) for _ in range(WRITERS)))
        done.set()
        seen = await reader
    finally:
        await pool.close()

    assert commits != sorted(commits), "the writers never committed out of position order"
    streams = {stream for stream, _ in written}
    ours = [row for row in seen if row[1] in streams]
    keys = [(stream, version) for _, stream, version in ours]
    assert len(keys) == len(set(keys)), "an event was delivered twice"
    assert set(keys) == written, "an event was skipped"
    positions = [p for p, _, _ in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


async def test_a_stale_expected_version_raises_concurrency_error(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    stream = new_id()
    first = [AuthorCreated(author_id=stream, name="a")]
    async with pool.acquire() as conn, conn.transaction():
        await event_store.append(
            conn, stream_id=stream, stream_type="Author", expected_version=0, events=first, metadata=META
        )
    again = [AuthorRenamed(author_id=stream, name="b")]
    with pytest.raises(ConcurrencyError):
        async with pool.acquire() as conn, conn.transaction():
            await event_store.append(
                conn, stream_id=stream, stream_type="Author", expected_version=0, events=again, metadata=META
            )
    assert [r.stream_version for r in await event_store.read_stream(stream)] == [1]


async def test_each_appended_event_gets_an_id_of_its_own(pool: asyncpg.Pool, event_store: EventStore) -> None:
    author, book = new_id(), new_id()
    renames = [AuthorRenamed(author_id=author, name=f"a{i}") for i in range(3)]
    created = BookCreated(
        book_id=book,
        name="b",
        description=None,
        price=Decimal("9.99"),
        price_sale=None,
        category_id=new_id(),
        publisher_id=new_id(),
        author_ids=(author,),
    )
    async with pool.acquire() as conn:
        await event_store.append(
            conn,
            stream_id=author,
            stream_type="Author",
            expected_version=0,
            events=[AuthorCreated(author_id=author, name="a"), *renames],
            metadata=META,
        )
        await event_store.append(
            conn,
            stream_id=book,
            stream_type="Book",
            expected_version=0,
            events=[created],
            metadata=META,
            refers_to={author: 4},
        )
    recorded = await event_store.read_stream(author) + await event_store.read_stream(book)
    ids = [uuid.UUID(r.event_id) for r in recorded]
    assert len(ids) == len(set(ids)) == 5
    assert {i.version for i in ids} == {4}


@pytest.mark.parametrize("count", [1, 3], ids=["one-event", "three-events"])
@pytest.mark.parametrize("referring", [False, True], ids=["plain", "referring"])
async def test_every_append_statement_stores_what_it_was_given_and_checks_versions(
    pool: asyncpg.Pool, event_store: EventStore, count: int, referring: bool
) -> None:
    # One event goes as values, several as arrays; with and without references: four statements.
    author, stream = new_id(), new_id()
    events = [
        AuthorCreated(author_id=stream, name="a"),
        *(AuthorRenamed(author_id=stream, name=f"a{i}") for i in range(1, count)),
    ]
    meta = Metadata(actor="writer", correlation_id="corr", causation_id="cause", traceparent=None)
    async with pool.acquire() as conn:
        await event_store.append(
            conn,
            stream_id=author,
            stream_type="Author",
            expected_version=0,
            events=[AuthorCreated(author_id=author, name="t")],
            metadata=META,
        )
        refers_to = {author: 1} if referring else None
        append = functools.partial(
            event_store.append, conn, stream_id=stream, stream_type="Author", events=events, metadata=meta
        )
        if referring:
            with pytest.raises(TargetChanged):
                await append(expected_version=0, refers_to={author: 2})
        position = await append(expected_version=0, refers_to=refers_to)
        with pytest.raises(ConcurrencyError):
            await append(expected_version=0, refers_to=refers_to)
        referred = await conn.fetch(
            "SELECT target_stream FROM eventstore.references WHERE source_stream = $1", stream
        )
    recorded = await event_store.read_stream(stream)
    assert [(r.stream_version, r.event_type, r.schema_version, r.event) for r in recorded] == [
        (n, type(e).__name__, event_store.registry.encode(e)[1], e) for n, e in enumerate(events, 1)
    ]
    assert all(r.metadata == meta.as_dict() and r.stream_type == "Author" for r in recorded)
    assert position == recorded[-1].position
    assert [row["target_stream"] for row in referred] == ([author] if referring else [])


async def test_concurrent_writers_at_one_version_exactly_one_wins(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    stream = new_id()

    async def write(name: str) -> bool:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await event_store.append(
                    conn,
                    stream_id=stream,
                    stream_type="Author",
                    expected_version=0,
                    events=[AuthorCreated(author_id=stream, name=name)],
                    metadata=META,
                )
        except ConcurrencyError:
            return False
        return True

    outcomes = await asyncio.gather(*(write(f"n{i}") for i in range(5)))
    assert sorted(outcomes) == [False] * 4 + [True]


async def test_a_stored_v1_book_created_is_read_as_v2(pool: asyncpg.Pool, event_store: EventStore) -> None:
    book, author = new_id(), new_id()
    v1 = {
        "book_id": book,
        "name": "Old Book",
        "price": 19.99,
        "category_id": new_id(),
        "publisher_id": new_id(),
        "author_id": author,
    }
    before = await event_store.head()
    await pool.execute(
        """INSERT INTO eventstore.events
           (stream_id, stream_type, stream_version, event_id, event_type, schema_version, data, metadata)
           VALUES ($1, 'Book', 1, $2, 'BookCreated', 1, $3::jsonb, $4::jsonb)""",
        book,
        uuid.uuid4(),
        json.dumps(v1),
        json.dumps(META.as_dict()),
    )
    [from_stream] = await event_store.read_stream(book)
    from_all = await _read_all_of(event_store, before, book)
    assert [r.schema_version for r in from_all] == [1]
    for recorded in (from_stream, from_all[0]):
        event = recorded.event
        assert isinstance(event, BookCreated)
        assert event.author_ids == (author,)
        assert event.price == Decimal("19.99") and str(event.price) == "19.99"
        assert event.price_sale is None and event.description is None
        assert recorded.data["author_id"] == author  # the stored row is never rewritten
    assert before == START or before < from_stream.position


async def _read_all_of(store: EventStore, after: Position, stream_id: str) -> list[RecordedEvent]:
    """Read all from `after` until `stream_id` shows up (another session's open transaction may delay it)."""
    deadline = asyncio.get_running_loop().time() + 10
    found: list[RecordedEvent] = []
    while not found and asyncio.get_running_loop().time() < deadline:
        batch = await store.read_all(after, limit=500)
        found = [r for r in batch if r.stream_id == stream_id]
        after = batch[-1].position if batch else after
        if not batch:
            await asyncio.sleep(0.01)
    return found


async def test_a_transaction_of_another_database_holds_no_event_back(
    make_settings: Callable[[], Settings],
) -> None:
    # Transaction ids are the server's: a writer in another database (a migration, a test, a job left idle
    # in transaction) must not stop this database's commit-order readers, the relay first (migration 0014).
    settings = make_settings()
    assert settings.database_url
    elsewhere = urlunsplit(urlsplit(plain_url(settings.database_url))._replace(path="/postgres"))
    pool = await create_pool(settings.database_url)
    other = await asyncpg.connect(elsewhere)
    try:
        store = EventStore(pool)
        before = await store.head()
        async with other.transaction():
            await other.fetchval("SELECT pg_current_xact_id()")  # holds an id until it ends
            author = new_id()
            appended = await _append_one(
                pool, store, author, "Author", 0, AuthorCreated(author_id=author, name="a")
            )
            assert [r.position for r in await store.read_all(before)] == [appended]
            assert not await store.held_back(appended)
            assert await store.head() == appended
    finally:
        await other.close()
        await pool.close()


async def test_a_projector_transaction_holds_no_event_back_and_cannot_append(
    make_settings: Callable[[], Settings],
) -> None:
    # A transaction named a projector's (as every projection batch and rebuild transaction is) can never
    # append, so commit order does not wait for it (migration 0015), however long it holds its id.
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    try:
        store = EventStore(pool)
        before = await store.head()
        author = new_id()

        async def rename(conn: asyncpg.Connection) -> None:
            renamed = [AuthorRenamed(author_id=author, name="b")]
            await store.append(
                conn,
                stream_id=author,
                stream_type="Author",
                expected_version=1,
                events=renamed,
                metadata=META,
            )

        async with pool.acquire() as projector:
            async with projector.transaction():
                await as_projector(projector)
                await projector.fetchval("SELECT pg_current_xact_id()")  # holds an id until it ends
                appended = await _append_one(
                    pool, store, author, "Author", 0, AuthorCreated(author_id=author, name="a")
                )
                assert [r.position for r in await store.read_all(before)] == [appended]
                assert not await store.held_back(before)
                assert await store.head() == appended
            with pytest.raises(asyncpg.RaiseError, match="projector transaction cannot append"):
                async with projector.transaction():
                    await as_projector(projector)
                    await rename(projector)
            with pytest.raises(asyncpg.RaiseError, match="projector transaction cannot append"):
                async with projector.transaction():  # no statement inserts events: the trigger is the table's
                    await as_projector(projector)
                    await projector.execute(
                        "INSERT INTO eventstore.events (stream_id, stream_type, stream_version, event_id,"
                        " event_type, schema_version, data, metadata)"
                        " VALUES ($1, 'Author', 2, gen_random_uuid(), 'AuthorRenamed', 1, '{}', '{}')",
                        author,
                    )
            # Nor can a transaction that appended become a projector's: the horizon would pass its events by.
            with pytest.raises(asyncpg.RaiseError, match="appended events cannot become a projector"):
                async with projector.transaction():
                    await rename(projector)
                    await as_projector(projector)
        assert [e.stream_version for e in await store.read_stream(author)] == [1]
    finally:
        await pool.close()


async def test_a_transaction_of_this_database_still_holds_later_commits_back(
    make_settings: Callable[[], Settings],
) -> None:
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    try:
        store = EventStore(pool)
        before = await store.head()
        author = new_id()
        async with pool.acquire() as holder:
            async with holder.transaction():
                await holder.fetchval("SELECT pg_current_xact_id()")  # may append later, below what follows
                appended = await _append_one(
                    pool, store, author, "Author", 0, AuthorCreated(author_id=author, name="a")
                )
                assert await store.read_all(before) == []
                assert await store.held_back(before)
        assert [r.position for r in await store.read_all(before)] == [appended]
    finally:
        await pool.close()


async def test_read_types_sends_only_those_types_and_tells_how_far_the_page_read(
    make_settings: Callable[[], Settings],
) -> None:
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    try:
        store = EventStore(pool)
        author, category = new_id(), new_id()
        positions = [
            await _append_one(pool, store, author, "Author", 0, AuthorCreated(author_id=author, name="a")),
            await _append_one(
                pool, store, category, "Category", 0, CategoryCreated(category_id=category, name="c")
            ),
            await _append_one(pool, store, author, "Author", 1, AuthorRenamed(author_id=author, name="b")),
            await _append_one(
                pool, store, category, "Category", 1, CategoryRenamed(category_id=category, name="d")
            ),
        ]
        authors = {"AuthorCreated", "AuthorRenamed"}
        await _visible(store, positions[-1])

        first = await store.read_types(authors, START, positions[-1], limit=2)
        second = await store.read_types(authors, first.end, positions[-1], limit=2)
        bounded = await store.read_types(authors, START, positions[1], limit=10)
        done = await store.read_types(authors, second.end, positions[-1], limit=2)
    finally:
        await pool.close()

    # Each page ends at its last event of any type, and counts those it passed over.
    assert [e.event for e in first.events] == [AuthorCreated(author_id=author, name="a")]
    assert (first.end, first.read) == (positions[1], 2)
    assert [e.event for e in second.events] == [AuthorRenamed(author_id=author, name="b")]
    assert [e.position for e in second.events] == [positions[2]]
    assert (second.end, second.read) == (positions[3], 2)
    assert ([e.position for e in bounded.events], bounded.end, bounded.read) == (
        [positions[0]],
        positions[1],
        2,
    )
    assert (done.events, done.end, done.read) == ([], positions[-1], 0)


async def test_read_types_decodes_a_page_in_slices_and_keeps_its_order(
    make_settings: Callable[[], Settings],
) -> None:
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    try:
        store = EventStore(pool)
        author, category = new_id(), new_id()
        renames = [AuthorRenamed(author_id=author, name=f"name {i}") for i in range(250)]
        created = CategoryCreated(category_id=category, name="c")
        await _append_one(pool, store, category, "Category", 0, created)
        async with pool.acquire() as conn, conn.transaction():
            last = await store.append(
                conn,
                stream_id=author,
                stream_type="Author",
                expected_version=0,
                events=[AuthorCreated(author_id=author, name="a"), *renames],
                metadata=META,
            )
        await _visible(store, last)

        page = await store.read_types({"AuthorCreated", "AuthorRenamed"}, START, last, limit=1000)
    finally:
        await pool.close()

    assert [e.event for e in page.events] == [AuthorCreated(author_id=author, name="a"), *renames]
    assert [e.stream_version for e in page.events] == list(range(1, 252))
    assert (page.end, page.read) == (last, 252)


async def _append_one(
    pool: asyncpg.Pool, store: EventStore, stream: str, stream_type: str, version: int, event: Event
) -> Position:
    async with pool.acquire() as conn, conn.transaction():
        return await store.append(
            conn,
            stream_id=stream,
            stream_type=stream_type,
            expected_version=version,
            events=[event],
            metadata=META,
        )


async def _visible(store: EventStore, position: Position) -> None:
    """Wait until commit-order readers see `position` (another database's open transaction may delay it)."""
    deadline = asyncio.get_running_loop().time() + 10
    while await store.head() < position:
        assert asyncio.get_running_loop().time() < deadline, "the appended events never became visible"
        await asyncio.sleep(0.01)
