"""Catalog commands through the CommandBus on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.commands.bus import CommandBus
from app.commands.results import CommandResult
from app.db import UNAVAILABLE_MESSAGE, plain_url
from app.domain.catalog import commands as c
from app.domain.errors import (
    ConflictError,
    KeyReusedError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from app.events.catalog import BookCreated, BookDeleted, BookUpdated
from app.eventstore import EventStore
from app.ids import new_id
from app.settings import Settings

ACTOR = "tester"


@pytest.fixture(scope="module")
def bus(pool: asyncpg.Pool, event_store: EventStore) -> CommandBus:
    return CommandBus(pool, event_store)


async def run(bus: CommandBus, command: Any, **options: Any) -> CommandResult:
    return await bus.dispatch(command, actor=ACTOR, **options)


async def total_events(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM eventstore.events"))


async def types_of(event_store: EventStore, stream_id: str) -> list[str]:
    return [r.event_type for r in await event_store.read_stream(stream_id)]


def unique(prefix: str) -> str:
    return f"{prefix} {new_id()[-12:]}"


async def new_category(bus: CommandBus) -> str:
    return (await run(bus, c.CreateCategory(category_id=new_id(), name=unique("Category")))).entity_id


async def new_publisher(bus: CommandBus) -> str:
    return (await run(bus, c.CreatePublisher(publisher_id=new_id(), name=unique("Publisher")))).entity_id


async def new_author(bus: CommandBus) -> str:
    return (await run(bus, c.CreateAuthor(author_id=new_id(), name="Ann Leckie"))).entity_id


async def book_command(bus: CommandBus, **changes: Any) -> c.CreateBook:
    fields: dict[str, Any] = {
        "book_id": new_id(),
        "name": "Ancillary Justice",
        "price": Decimal("15"),
        "category_id": changes.pop("category_id", None) or await new_category(bus),
        "publisher_id": changes.pop("publisher_id", None) or await new_publisher(bus),
        "author_ids": changes.pop("author_ids", None) or (await new_author(bus),),
    }
    return c.CreateBook(**(fields | changes))


CAMEL = {"category_id": "categoryId", "publisher_id": "publisherId", "author_ids": "authorIds"}

# ---- authors, categories, publishers

NAMED = {
    "author": (c.CreateAuthor, c.RenameAuthor, c.DeleteAuthor, "author_id"),
    "category": (c.CreateCategory, c.RenameCategory, c.DeleteCategory, "category_id"),
    "publisher": (c.CreatePublisher, c.RenamePublisher, c.DeletePublisher, "publisher_id"),
}


@pytest.mark.parametrize("kind", NAMED)
async def test_create_rename_delete(bus: CommandBus, event_store: EventStore, kind: str) -> None:
    create, rename, delete, key = NAMED[kind]
    entity = new_id()
    created = await run(bus, create(**{key: entity, "name": unique(" Name ")}))
    renamed = await run(bus, rename(**{key: entity, "name": unique("Other")}))
    deleted = await run(bus, delete(**{key: entity}))
    assert created.entity_id == renamed.entity_id == deleted.entity_id == entity
    assert created.position < renamed.position < deleted.position
    stream = await event_store.read_stream(entity)
    assert [r.event_type for r in stream] == [f"{kind.title()}{v}" for v in ("Created", "Renamed", "Deleted")]
    assert stream[0].metadata["actor"] == ACTOR and stream[0].metadata["correlation_id"]
    with pytest.raises(NotFoundError):
        await run(bus, rename(**{key: entity, "name": "Again"}))
    with pytest.raises(NotFoundError):
        await run(bus, delete(**{key: entity}))


async def test_a_rename_to_the_same_name_appends_nothing(bus: CommandBus, event_store: EventStore) -> None:
    author = new_id()
    created = await run(bus, c.CreateAuthor(author_id=author, name="Same"))
    again = await run(bus, c.RenameAuthor(author_id=author, name=" Same "))
    assert again == created and await types_of(event_store, author) == ["AuthorCreated"]


@pytest.mark.parametrize("kind", ["category", "publisher"])
async def test_category_and_publisher_names_are_unique_ignoring_case(bus: CommandBus, kind: str) -> None:
    create, rename, delete, key = NAMED[kind]
    name = unique("Fantasy")
    first, second = new_id(), new_id()
    await run(bus, create(**{key: first, "name": name}))
    with pytest.raises(ConflictError):
        await run(bus, create(**{key: new_id(), "name": f"  {name.upper()} "}))
    await run(bus, create(**{key: second, "name": unique("Horror")}))
    with pytest.raises(ConflictError):
        await run(bus, rename(**{key: second, "name": name.lower()}))
    await run(bus, rename(**{key: first, "name": name.upper()}))  # a change of case keeps the name
    await run(bus, rename(**{key: first, "name": unique("Moved")}))  # frees the old name
    await run(bus, rename(**{key: second, "name": name}))
    await run(bus, delete(**{key: second}))  # frees it again
    await run(bus, create(**{key: new_id(), "name": name}))


async def test_author_names_need_not_be_unique(bus: CommandBus) -> None:
    for _ in range(2):
        await run(bus, c.CreateAuthor(author_id=new_id(), name="Jane Doe"))


async def test_concurrent_creates_of_one_name_let_exactly_one_win(bus: CommandBus) -> None:
    name = unique("Poetry")
    outcomes = await asyncio.gather(
        *(run(bus, c.CreateCategory(category_id=new_id(), name=name)) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, CommandResult) for o in outcomes) == 1
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 4


# ---- books


async def test_book_create_update_delete(
    bus: CommandBus, event_store: EventStore, pool: asyncpg.Pool
) -> None:
    command = await book_command(bus, price=Decimal("15.5"))
    created = await run(bus, command)
    other_author = await new_author(bus)
    update = c.UpdateBook(book_id=command.book_id, author_ids=(other_author,), status="OUT_OF_STOCK")
    updated = await run(bus, update)
    deleted = await run(bus, c.DeleteBook(book_id=command.book_id))
    stream = await event_store.read_stream(command.book_id)
    first, second, third = (r.event for r in stream)
    assert isinstance(first, BookCreated) and str(first.price) == "15.50"
    assert isinstance(second, BookUpdated) and second.author_ids == (other_author,)
    assert second.status == "OUT_OF_STOCK" and isinstance(third, BookDeleted)
    assert created.position < updated.position < deleted.position
    with pytest.raises(NotFoundError):
        await run(bus, c.UpdateBook(book_id=command.book_id, name="Back"))
    with pytest.raises(NotFoundError):
        await run(bus, c.DeleteBook(book_id=command.book_id))
    refs = await pool.fetchval(
        "SELECT count(*) FROM eventstore.references WHERE source_stream = $1", first.book_id
    )
    assert refs == 0


async def test_a_book_needs_existing_references(bus: CommandBus, pool: asyncpg.Pool) -> None:
    last = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM eventstore.events")
    missing = {"category_id": new_id(), "publisher_id": new_id(), "author_ids": (new_id(),)}
    for field, value in missing.items():
        with pytest.raises(NotFoundError, match=CAMEL[field]):
            await run(bus, await book_command(bus, **{field: value}))
    deleted_author = await new_author(bus)
    await run(bus, c.DeleteAuthor(author_id=deleted_author))
    with pytest.raises(NotFoundError, match="authorIds"):
        await run(bus, await book_command(bus, author_ids=(await new_author(bus), deleted_author)))
    # An author's id is no category.
    with pytest.raises(NotFoundError, match="categoryId"):
        await run(bus, await book_command(bus, category_id=await new_author(bus)))
    books = await pool.fetchval(
        "SELECT count(*) FROM eventstore.events WHERE stream_type = 'Book' AND global_position > $1", last
    )
    assert books == 0


@pytest.mark.parametrize("kind", NAMED)
async def test_deleting_what_a_book_references_conflicts(bus: CommandBus, kind: str) -> None:
    _, _, delete, key = NAMED[kind]
    command = await book_command(bus)
    target = command.author_ids[0] if kind == "author" else getattr(command, key)
    await run(bus, command)
    with pytest.raises(ConflictError):
        await run(bus, delete(**{key: target}))
    await run(bus, c.DeleteBook(book_id=command.book_id))
    await run(bus, delete(**{key: target}))


async def test_moving_a_book_frees_its_old_category(bus: CommandBus) -> None:
    command = await book_command(bus)
    await run(bus, command)
    await run(bus, c.UpdateBook(book_id=command.book_id, category_id=await new_category(bus)))
    await run(bus, c.DeleteCategory(category_id=command.category_id))


async def test_create_book_against_delete_category_exactly_one_wins(
    bus: CommandBus, event_store: EventStore
) -> None:
    publisher, author = await new_publisher(bus), await new_author(bus)
    for _ in range(8):
        category = await new_category(bus)
        create = await book_command(bus, category_id=category, publisher_id=publisher, author_ids=(author,))
        book, removal = await asyncio.gather(
            run(bus, create), run(bus, c.DeleteCategory(category_id=category)), return_exceptions=True
        )
        if isinstance(book, CommandResult):
            assert isinstance(removal, ConflictError)
            assert await types_of(event_store, category) == ["CategoryCreated"]
        else:
            assert isinstance(book, NotFoundError) and isinstance(removal, CommandResult)
            assert await types_of(event_store, create.book_id) == []


async def test_update_with_a_stale_expected_version_conflicts(
    bus: CommandBus, event_store: EventStore
) -> None:
    command = await book_command(bus)
    await run(bus, command)
    await run(bus, c.UpdateBook(book_id=command.book_id, name="Second", expected_version=1))
    with pytest.raises(ConflictError):
        await run(bus, c.UpdateBook(book_id=command.book_id, name="Third", expected_version=1))
    assert await types_of(event_store, command.book_id) == ["BookCreated", "BookUpdated"]


async def test_concurrent_updates_at_one_expected_version_let_one_win(bus: CommandBus) -> None:
    command = await book_command(bus)
    await run(bus, command)
    outcomes = await asyncio.gather(
        *(
            run(bus, c.UpdateBook(book_id=command.book_id, name=f"N{i}", expected_version=1))
            for i in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(o, CommandResult) for o in outcomes) == 1
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 3, outcomes


async def test_concurrent_renames_are_retried(bus: CommandBus, event_store: EventStore) -> None:
    author = await new_author(bus)
    await asyncio.gather(*(run(bus, c.RenameAuthor(author_id=author, name=f"N{i}")) for i in range(2)))
    assert await types_of(event_store, author) == ["AuthorCreated", "AuthorRenamed", "AuthorRenamed"]


# ---- bad inputs


async def test_bad_inputs_change_nothing(bus: CommandBus, pool: asyncpg.Pool) -> None:
    good = await book_command(bus)
    await run(bus, good)
    before = await total_events(pool)
    bad: list[tuple[Any, type[Exception]]] = [
        (c.CreateAuthor(author_id=new_id(), name="  "), ValidationError),
        (c.CreateCategory(category_id=new_id(), name="x" * 101), ValidationError),
        (await book_command(bus, price=Decimal("-1"), name=""), ValidationError),
        (c.UpdateBook(book_id=good.book_id, price=Decimal("1.001")), ValidationError),
        (c.UpdateBook(book_id=good.book_id, description="d" * 2001), ValidationError),
        (c.UpdateBook(book_id=new_id(), name="Ghost"), NotFoundError),
        (c.UpdateBook(book_id="x" * 5000, name="Huge id"), NotFoundError),
        (c.RenamePublisher(publisher_id=new_id(), name="Ghost"), NotFoundError),
        (c.CreateBook(**{**good.__dict__, "book_id": good.book_id}), ConflictError),
        (c.CreateCategory(category_id=good.author_ids[0], name=unique("Taken id")), ConflictError),
    ]
    before = await total_events(pool)
    for command, error in bad:
        with pytest.raises(error):
            await run(bus, command)
    assert await total_events(pool) == before


async def test_validation_reports_every_bad_field(bus: CommandBus) -> None:
    command = await book_command(bus, name=" ", price=Decimal("0"), category_id="nope", author_ids=("x",))
    with pytest.raises(ValidationError) as caught:
        await run(bus, command)
    assert {f.field for f in caught.value.fields} == {"name", "price", "categoryId", "authorIds"}


# ---- idempotency


async def test_a_repeated_key_returns_the_first_result(bus: CommandBus, event_store: EventStore) -> None:
    key = new_id()
    first = await run(bus, c.CreateAuthor(author_id=new_id(), name="Once"), idempotency_key=key)
    # The server mints a new id for each request: a true repeat differs from the first only there.
    again = await run(bus, c.CreateAuthor(author_id=new_id(), name="Once"), idempotency_key=key)
    assert again == first
    assert await types_of(event_store, first.entity_id) == ["AuthorCreated"]
    # Keys belong to their actor.
    other = await bus.dispatch(
        c.CreateAuthor(author_id=new_id(), name="X"), actor="other", idempotency_key=key
    )
    assert other.entity_id != first.entity_id


async def test_a_key_reused_for_another_command_type_conflicts(bus: CommandBus) -> None:
    key = new_id()
    await run(bus, c.CreateAuthor(author_id=new_id(), name="A"), idempotency_key=key)
    with pytest.raises(ConflictError):
        await run(bus, c.CreateCategory(category_id=new_id(), name=unique("C")), idempotency_key=key)


async def test_a_key_reused_for_another_request_is_refused_and_writes_nothing(
    bus: CommandBus, pool: asyncpg.Pool
) -> None:
    key = new_id()
    book = await book_command(bus, price=Decimal("12.50"))
    first = await run(bus, book, idempotency_key=key)
    same = dataclasses.replace(book, book_id=new_id(), price=Decimal("12.5"))
    assert await run(bus, same, idempotency_key=key) == first
    before = await total_events(pool)
    with pytest.raises(KeyReusedError) as caught:
        await run(bus, dataclasses.replace(book, book_id=new_id(), name="Other"), idempotency_key=key)
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert await total_events(pool) == before


async def test_a_key_stored_without_a_fingerprint_matches_its_command_type(
    bus: CommandBus, pool: asyncpg.Pool
) -> None:
    key = new_id()
    first = await run(bus, c.CreateAuthor(author_id=new_id(), name="Before"), idempotency_key=key)
    await pool.execute("UPDATE eventstore.idempotency SET fingerprint = NULL WHERE key = $1", key)
    again = await run(bus, c.CreateAuthor(author_id=new_id(), name="Whatever"), idempotency_key=key)
    assert again == first
    with pytest.raises(KeyReusedError):
        await run(bus, c.CreateCategory(category_id=new_id(), name=unique("C")), idempotency_key=key)


async def test_a_failed_command_leaves_its_key_free(bus: CommandBus) -> None:
    key = new_id()
    with pytest.raises(ValidationError):
        await run(bus, c.CreateAuthor(author_id=new_id(), name=""), idempotency_key=key)
    result = await run(bus, c.CreateAuthor(author_id=new_id(), name="Fixed"), idempotency_key=key)
    assert result == await run(bus, c.CreateAuthor(author_id=new_id(), name="Fixed"), idempotency_key=key)


@pytest.mark.parametrize("key", ["", "k" * 201, "nul\x00key", "lone\ud800"])
async def test_a_bad_key_is_a_validation_error(bus: CommandBus, key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await run(bus, c.CreateAuthor(author_id=new_id(), name="A"), idempotency_key=key)
    assert [f.field for f in caught.value.fields] == ["idempotencyKey"]


async def test_twenty_concurrent_dispatches_with_one_key_make_one_event(
    bus: CommandBus, pool: asyncpg.Pool
) -> None:
    key = new_id()
    before = await total_events(pool)
    commands = [c.CreateAuthor(author_id=new_id(), name="Burst") for _ in range(20)]
    results = await asyncio.gather(*(run(bus, cmd, idempotency_key=key) for cmd in commands))
    assert len(set(results)) == 1
    assert await total_events(pool) == before + 1
    streams = await pool.fetchval(
        "SELECT count(*) FROM eventstore.events WHERE stream_id = ANY($1::text[])",
        [cmd.author_id for cmd in commands],
    )
    assert streams == 1


# ---- infrastructure


async def test_an_unreachable_database_is_unavailable(event_store: EventStore) -> None:
    pool = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0, max_size=1)
    try:
        bus = CommandBus(pool, event_store)
        with pytest.raises(UnavailableError) as caught:
            await run(bus, c.CreateAuthor(author_id=new_id(), name="A"))
        assert caught.value.message == UNAVAILABLE_MESSAGE
    finally:
        await pool.close()


async def test_an_exhausted_pool_is_unavailable(settings: Settings, event_store: EventStore) -> None:
    assert settings.database_url
    pool = await asyncpg.create_pool(plain_url(settings.database_url), min_size=1, max_size=1)
    try:
        bus = CommandBus(pool, event_store, acquire_timeout=0.05)
        async with pool.acquire():
            with pytest.raises(UnavailableError):
                await run(bus, c.CreateAuthor(author_id=new_id(), name="A"))
    finally:
        await pool.close()


async def test_a_closed_pool_is_unavailable(settings: Settings, event_store: EventStore) -> None:
    assert settings.database_url
    pool = await asyncpg.create_pool(plain_url(settings.database_url), min_size=0, max_size=1)
    await pool.close()
    with pytest.raises(UnavailableError):
        await run(CommandBus(pool, event_store), c.CreateAuthor(author_id=new_id(), name="A"))
