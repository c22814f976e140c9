"""The write path on a real PostgreSQL: no transaction id while a command decides, one short write after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.commands.bus import HANDLERS, CommandBus
from app.commands.catalog_handlers import create_book
from app.commands.streams import Context, Handler
from app.domain.catalog import commands as c
from app.domain.commands import Command
from app.domain.errors import NotFoundError
from app.events.catalog import BookCreated
from app.eventstore import EventStore, RecordedEvent
from app.ids import new_id
from tests.integration.bus_support import wait_until

ACTOR = "tester"


Pause = Callable[[Context], Awaitable[None]]


def bus_with(pool: asyncpg.Pool, store: EventStore, pause: Pause) -> CommandBus:
    """Return a bus whose CreateBook handler calls `pause` after deciding, before the bus writes."""

    async def paused(ctx: Context, command: c.CreateBook) -> str:
        entity_id = await create_book(ctx, command)
        await pause(ctx)
        return entity_id

    handlers: dict[type[Command], Handler] = {**HANDLERS, c.CreateBook: paused}
    return CommandBus(pool, store, handlers=handlers)


async def targets(bus: CommandBus) -> dict[str, Any]:
    category, publisher, author = new_id(), new_id(), new_id()
    await bus.dispatch(c.CreateCategory(category_id=category, name=f"C {category[-12:]}"), actor=ACTOR)
    await bus.dispatch(c.CreatePublisher(publisher_id=publisher, name=f"P {publisher[-12:]}"), actor=ACTOR)
    await bus.dispatch(c.CreateAuthor(author_id=author, name="A"), actor=ACTOR)
    return {"category_id": category, "publisher_id": publisher, "author_ids": (author,)}


def new_book(refs: dict[str, Any]) -> c.CreateBook:
    return c.CreateBook(book_id=new_id(), name="Ancillary Justice", price=Decimal("15"), **refs)


async def xid_of(pool: asyncpg.Pool, pid: int) -> str | None:
    xid: str | None = await pool.fetchval(
        "SELECT backend_xid::text FROM pg_stat_activity WHERE pid = $1", pid
    )
    return xid


@pytest.mark.parametrize("key", [None, "write-path-key"])
async def test_a_command_holds_no_transaction_id_while_it_decides(
    pool: asyncpg.Pool, event_store: EventStore, key: str | None
) -> None:
    seen: list[tuple[str | None, bool]] = []

    async def look(ctx: Context) -> None:
        seen.append((await xid_of(pool, ctx.conn.get_server_pid()), ctx.conn.is_in_transaction()))

    bus = bus_with(pool, event_store, look)
    refs = await targets(bus)
    await bus.dispatch(new_book(refs), actor=ACTOR, idempotency_key=key and f"{key}-{new_id()}")
    assert seen == [(None, False)]


async def test_inside_a_callers_transaction_the_command_reads_there_and_writes_in_a_savepoint(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    bus = CommandBus(pool, event_store)
    refs = await targets(bus)
    command = new_book(refs)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await bus.dispatch(command, actor=ACTOR, conn=conn)
        # Its own write is visible to the caller's transaction only, until the caller commits.
        assert [r.event_type for r in await event_store.read_stream(command.book_id, conn=conn)] == [
            "BookCreated"
        ]
        assert await event_store.read_stream(command.book_id) == []
        await transaction.rollback()
    assert await event_store.read_stream(command.book_id) == []


async def test_a_target_renamed_between_decide_and_write_is_decided_again(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    refs = await targets(plain)
    pauses = 0

    async def rename_once(ctx: Context) -> None:
        nonlocal pauses
        pauses += 1
        if pauses == 1:
            rename = c.RenameCategory(category_id=refs["category_id"], name=f"R {new_id()[-12:]}")
            await plain.dispatch(rename, actor=ACTOR)

    command = new_book(refs)
    await bus_with(pool, event_store, rename_once).dispatch(command, actor=ACTOR)
    assert pauses == 2
    assert [type(r.event) for r in await event_store.read_stream(command.book_id)] == [BookCreated]


async def test_a_target_deleted_between_decide_and_write_is_not_found(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    refs = await targets(plain)

    async def delete_category(ctx: Context) -> None:
        await plain.dispatch(c.DeleteCategory(category_id=refs["category_id"]), actor=ACTOR)

    command = new_book(refs)
    with pytest.raises(NotFoundError, match="categoryId"):
        await bus_with(pool, event_store, delete_category).dispatch(command, actor=ACTOR)
    assert await event_store.read_stream(command.book_id) == []
    refs_rows = await pool.fetchval(
        "SELECT count(*) FROM eventstore.references WHERE source_stream = $1", command.book_id
    )
    assert refs_rows == 0


async def test_a_target_deleted_while_the_write_waits_for_its_lock_is_not_found(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    """The targets' check reads after their locks are held, though both are one statement."""
    plain = CommandBus(pool, event_store)
    refs = await targets(plain)
    deleting = await pool.acquire()
    transaction = deleting.transaction()
    committed: list[asyncio.Task[None]] = []

    async def book_waits() -> bool:
        waiting = "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"
        return bool(await pool.fetchval(waiting))

    async def commit_once_the_book_waits() -> None:
        await wait_until(book_waits, what="the book's write waiting for the category's lock")
        await transaction.commit()

    async def delete_uncommitted(ctx: Context) -> None:
        if committed:
            return
        await transaction.start()
        delete = c.DeleteCategory(category_id=refs["category_id"])
        await plain.dispatch(delete, actor=ACTOR, conn=deleting)  # holds the exclusive lock until commit
        committed.append(asyncio.create_task(commit_once_the_book_waits()))

    command = new_book(refs)
    try:
        with pytest.raises(NotFoundError, match="categoryId"):
            await bus_with(pool, event_store, delete_uncommitted).dispatch(command, actor=ACTOR)
        await committed[0]
    finally:
        await pool.release(deleting)
    assert await event_store.read_stream(command.book_id) == []
    refs_rows = await pool.fetchval(
        "SELECT count(*) FROM eventstore.references WHERE source_stream = $1", command.book_id
    )
    assert refs_rows == 0


class CountingStore(EventStore):
    """The event store, counting the streams commands read."""

    read: list[str]

    async def read_streams(self, stream_ids: Sequence[str], **kwargs: Any) -> dict[str, list[RecordedEvent]]:
        self.read += stream_ids
        return await super().read_streams(stream_ids, **kwargs)


async def test_targets_read_once_are_not_read_again_until_they_move(pool: asyncpg.Pool) -> None:
    store = CountingStore(pool)
    store.read = []
    bus = CommandBus(pool, store)
    refs = await targets(bus)
    await bus.dispatch(new_book(refs), actor=ACTOR)
    assert len(store.read) == 3
    await bus.dispatch(new_book(refs), actor=ACTOR)
    assert len(store.read) == 3  # the states kept: the write checked their versions instead
    rename = c.RenameCategory(category_id=refs["category_id"], name=f"R {new_id()[-12:]}")
    await bus.dispatch(rename, actor=ACTOR)
    renamed = new_book(refs)
    await bus.dispatch(renamed, actor=ACTOR)
    # The check failed on it; the next attempt read every target again (each kept state is as old).
    assert sorted(store.read[3:]) == sorted([refs["category_id"], refs["publisher_id"], *refs["author_ids"]])
    assert [type(r.event) for r in await store.read_stream(renamed.book_id)] == [BookCreated]
    await bus.dispatch(new_book(refs), actor=ACTOR)
    assert len(store.read) == 6  # kept again


async def test_every_target_renamed_since_its_state_was_kept_takes_one_more_attempt(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(pool)
    bus = CommandBus(pool, store)
    refs = await targets(bus)
    book = new_book(refs)
    await bus.dispatch(book, actor=ACTOR)  # keeps the three targets' states
    name = f"R {new_id()[-12:]}"
    await bus.dispatch(c.RenameAuthor(author_id=refs["author_ids"][0], name=name), actor=ACTOR)
    await bus.dispatch(c.RenameCategory(category_id=refs["category_id"], name=name), actor=ACTOR)
    await bus.dispatch(c.RenamePublisher(publisher_id=refs["publisher_id"], name=name), actor=ACTOR)
    # Both write paths: a book's update (in a transaction) and a new book (one statement).
    await bus.dispatch(c.UpdateBook(book_id=book.book_id, price=Decimal("12.00")), actor=ACTOR)
    again = new_book(refs)
    await bus.dispatch(again, actor=ACTOR)
    assert [type(r.event) for r in await store.read_stream(again.book_id)] == [BookCreated]


async def test_a_target_deleted_after_its_state_was_kept_is_not_found(pool: asyncpg.Pool) -> None:
    bus = CommandBus(pool, EventStore(pool))
    refs = await targets(bus)
    first = new_book(refs)
    await bus.dispatch(first, actor=ACTOR)  # keeps the three targets' states
    await bus.dispatch(c.DeleteBook(book_id=first.book_id), actor=ACTOR)
    await bus.dispatch(c.DeleteCategory(category_id=refs["category_id"]), actor=ACTOR)
    second = new_book(refs)
    with pytest.raises(NotFoundError, match="categoryId"):
        await bus.dispatch(second, actor=ACTOR)
    refs_rows = await pool.fetchval(
        "SELECT count(*) FROM eventstore.references WHERE source_stream = $1", second.book_id
    )
    assert refs_rows == 0


async def test_a_repeat_that_writes_second_gets_the_first_result(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    refs = await targets(plain)
    decided = asyncio.Event()
    release = asyncio.Event()

    async def hold(ctx: Context) -> None:
        if not decided.is_set():
            decided.set()
            await release.wait()

    key, late = new_id(), new_book(refs)
    slow = asyncio.create_task(
        bus_with(pool, event_store, hold).dispatch(late, actor=ACTOR, idempotency_key=key)
    )
    await decided.wait()
    # The first has decided but not written: the repeat decides too, writes first, and wins.
    first = await plain.dispatch(new_book(refs), actor=ACTOR, idempotency_key=key)
    release.set()
    assert await slow == first
    assert await event_store.read_stream(late.book_id) == []
    assert len(await event_store.read_stream(first.entity_id)) == 1
