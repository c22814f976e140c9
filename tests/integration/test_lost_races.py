"""Lost races through the CommandBus on a real PostgreSQL: which commands re-decide, and for how long."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from app.commands.bus import HANDLERS, REDECIDE_ATTEMPTS, REDECIDE_DEADLINE, CommandBus
from app.commands.catalog_handlers import update_book
from app.commands.results import CommandResult
from app.commands.streams import Context, Handler
from app.domain.catalog import commands as c
from app.domain.commands import Command
from app.domain.errors import ConflictError
from app.eventstore import EventStore
from app.ids import new_id

ACTOR = "tester"
# Concurrent updates of one book: with three attempts each some answer Conflict, while re-deciding, no
# update needed more than 17 attempts (of the bus's 50) when 60 raced on a two-CPU machine.
WRITERS = 50
ALWAYS = REDECIDE_ATTEMPTS  # interfering with every decision any command gets


async def new_book(bus: CommandBus) -> str:
    async def run(command: Command) -> str:
        return (await bus.dispatch(command, actor=ACTOR)).entity_id

    return await run(
        c.CreateBook(
            book_id=new_id(),
            name="Ancillary Justice",
            price=Decimal("15"),
            category_id=await run(c.CreateCategory(category_id=new_id(), name=f"C {new_id()[-12:]}")),
            publisher_id=await run(c.CreatePublisher(publisher_id=new_id(), name=f"P {new_id()[-12:]}")),
            author_ids=(await run(c.CreateAuthor(author_id=new_id(), name="Ann Leckie")),),
        )
    )


class Interfering:
    """UpdateBook's handler that counts its decisions; after each of the first `times`, another writer
    renames the book before the bus writes, so that attempt loses its race."""

    def __init__(self, plain: CommandBus, times: int) -> None:
        self.plain, self.times, self.decisions = plain, times, 0

    async def __call__(self, ctx: Context, command: c.UpdateBook) -> str:
        entity_id = await update_book(ctx, command)
        self.decisions += 1
        if self.decisions <= self.times:
            rename = c.UpdateBook(book_id=command.book_id, name=f"Renamed {new_id()[-12:]}")
            await self.plain.dispatch(rename, actor="user:other")
        return entity_id

    def bus(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        attempts: int = REDECIDE_ATTEMPTS,
        deadline: float = REDECIDE_DEADLINE,
    ) -> CommandBus:
        handlers: dict[type[Command], Handler] = {**HANDLERS, c.UpdateBook: self}
        return CommandBus(
            pool, store, handlers=handlers, redecide_attempts=attempts, redecide_deadline=deadline
        )


async def test_concurrent_updates_without_an_expected_version_all_succeed(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    # The deadline no run reaches: this is about which commands re-decide, not how fast the machine is.
    bus = CommandBus(pool, event_store, redecide_deadline=60.0)
    book = await new_book(bus)
    updates = [c.UpdateBook(book_id=book, price=Decimal(f"{20 + n}.50")) for n in range(WRITERS)]
    answers = await asyncio.gather(*(bus.dispatch(u, actor=ACTOR) for u in updates), return_exceptions=True)
    assert [a for a in answers if not isinstance(a, CommandResult)] == []
    assert len(await event_store.read_stream(book)) == 1 + WRITERS


async def test_an_update_without_an_expected_version_decides_again_after_a_lost_race(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    book = await new_book(plain)
    handler = Interfering(plain, times=1)
    await handler.bus(pool, event_store).dispatch(c.UpdateBook(book_id=book, price=Decimal("9")), actor=ACTOR)
    assert handler.decisions == 2
    assert [r.event_type for r in await event_store.read_stream(book)] == [
        "BookCreated",
        *["BookUpdated"] * 2,
    ]


async def test_an_update_at_an_expected_version_conflicts_at_its_first_lost_race(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    book = await new_book(plain)
    handler = Interfering(plain, times=1)
    update = c.UpdateBook(book_id=book, price=Decimal("9"), expected_version=1)
    with pytest.raises(ConflictError, match="changed by someone else"):
        await handler.bus(pool, event_store).dispatch(update, actor=ACTOR)
    assert handler.decisions == 1
    assert len(await event_store.read_stream(book)) == 2  # the other writer's rename only


@pytest.mark.parametrize(
    ("attempts", "deadline", "decisions"),
    [(7, 60.0, 7), (REDECIDE_ATTEMPTS, 0.0, 1)],
    ids=["attempts", "deadline"],
)
async def test_a_stream_that_always_moves_answers_conflict_at_the_first_bound_reached(
    pool: asyncpg.Pool, event_store: EventStore, attempts: int, deadline: float, decisions: int
) -> None:
    plain = CommandBus(pool, event_store)
    book = await new_book(plain)
    handler = Interfering(plain, times=ALWAYS)
    with pytest.raises(ConflictError, match="changed by someone else"):
        await handler.bus(pool, event_store, attempts, deadline).dispatch(
            c.UpdateBook(book_id=book, name="N"), actor=ACTOR
        )
    assert handler.decisions == decisions


async def test_with_the_default_bounds_a_stream_that_always_moves_still_answers_conflict(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    book = await new_book(plain)
    handler = Interfering(plain, times=ALWAYS)
    with pytest.raises(ConflictError, match="changed by someone else"):
        await handler.bus(pool, event_store).dispatch(c.UpdateBook(book_id=book, name="N"), actor=ACTOR)
    # More than the short limit of three, and no more than the bound (its 2 s deadline usually comes first).
    assert 3 < handler.decisions <= REDECIDE_ATTEMPTS


async def test_inside_a_callers_transaction_an_update_keeps_the_short_limit(
    pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    book = await new_book(plain)
    handler = Interfering(plain, times=ALWAYS)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ConflictError, match="changed by someone else"):
            await handler.bus(pool, event_store).dispatch(
                c.UpdateBook(book_id=book, name="N"), actor=ACTOR, conn=conn
            )
    assert handler.decisions == 3
