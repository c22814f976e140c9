"""The API's PostgreSQL limits on a real server: a statement past its timeout answers UNAVAILABLE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import asyncpg
import pytest

from app.commands.bus import CommandBus
from app.db import API_APPLICATION, TOO_SLOW_MESSAGE, api_session, create_pool, lift_limits
from app.domain.catalog import commands as c
from app.domain.errors import UnavailableError
from app.eventstore import EventStore
from app.ids import new_id
from app.queries.catalog import CatalogQueries
from app.settings import Settings

ACTOR = "tester"
LIMIT = 0.2  # seconds: short, so that the tests wait little


@pytest.fixture(scope="module")
async def api_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url
    limits = replace(settings, db_statement_timeout=LIMIT, db_idle_in_transaction_timeout=2 * LIMIT)
    pool = await create_pool(settings.database_url, size=4, session=api_session(limits))
    yield pool
    await pool.close()


async def test_api_connections_carry_their_name_and_limits(api_pool: asyncpg.Pool) -> None:
    row = await api_pool.fetchrow(
        "SELECT current_setting('application_name') AS name,"
        " current_setting('statement_timeout') AS statement,"
        " current_setting('idle_in_transaction_session_timeout') AS idle"
    )
    assert dict(row) == {"name": API_APPLICATION, "statement": "200ms", "idle": "400ms"}


async def test_a_command_past_the_statement_timeout_is_unavailable_and_writes_nothing(
    api_pool: asyncpg.Pool, pool: asyncpg.Pool, event_store: EventStore
) -> None:
    plain = CommandBus(pool, event_store)
    category, publisher, author = new_id(), new_id(), new_id()
    await plain.dispatch(c.CreateCategory(category_id=category, name=f"C {category[-12:]}"), actor=ACTOR)
    await plain.dispatch(c.CreatePublisher(publisher_id=publisher, name=f"P {publisher[-12:]}"), actor=ACTOR)
    await plain.dispatch(c.CreateAuthor(author_id=author, name="A"), actor=ACTOR)
    book = c.CreateBook(
        book_id=new_id(),
        name="Blocked",
        price=Decimal("10"),
        category_id=category,
        publisher_id=publisher,
        author_ids=(author,),
    )
    async with pool.acquire() as holder, holder.transaction():
        # What a delete of the category holds: the book's write waits for it, past the timeout.
        await holder.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", 0x626B7266, category)
        with pytest.raises(UnavailableError) as caught:
            await CommandBus(api_pool, event_store).dispatch(book, actor=ACTOR)
    assert caught.value.message == TOO_SLOW_MESSAGE
    assert await event_store.read_stream(book.book_id) == []


async def test_a_query_past_the_statement_timeout_is_unavailable(
    api_pool: asyncpg.Pool, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("LOCK TABLE read.category_view IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(UnavailableError, match="took too long"):
            await CatalogQueries(api_pool).list_categories()
    assert isinstance(await CatalogQueries(api_pool).list_categories(), list)


async def test_lifted_limits_let_one_transaction_take_longer(api_pool: asyncpg.Pool) -> None:
    async with api_pool.acquire() as conn:
        async with conn.transaction():
            await lift_limits(conn)
            await conn.execute("SELECT pg_sleep($1)", 2 * LIMIT)
        # Only for that transaction: the connection keeps its limit.
        with pytest.raises(asyncpg.QueryCanceledError):
            await conn.execute("SELECT pg_sleep($1)", 2 * LIMIT)


async def test_an_api_connection_comes_back_clean_with_one_statement_at_most(settings: Settings) -> None:
    assert settings.database_url
    pool = await create_pool(settings.database_url, size=1, session=api_session(settings))
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            # What a request may leave behind: a transaction never ended, holding what it took.
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(7, 7)")
            await conn.execute("SET LOCAL statement_timeout = 1234")
            await conn.execute("DECLARE leftover CURSOR FOR SELECT 1")
        async with pool.acquire() as conn:
            state = await conn.fetchrow(
                "SELECT pg_backend_pid() AS backend, current_setting('statement_timeout') AS timeout,"
                " (SELECT count(*) FROM pg_cursors WHERE name = 'leftover') AS cursors,"
                " (SELECT count(*) FROM pg_locks"
                "  WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks"
            )
            assert not conn.is_in_transaction()
    finally:
        await pool.close()
    assert dict(state) == {"backend": backend, "timeout": "5s", "cursors": 0, "locks": 0}
