"""Planner statistics renewed once a table has doubled, and the plans cached while it was small made again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from app.db import create_pool
from app.planner import analyze_grown
from app.settings import Settings

LEAST = 1_000

_LAST_ANALYZED = "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = $1"


@pytest.fixture
async def pool(make_settings: Callable[[], Settings]) -> AsyncIterator[asyncpg.Pool]:
    """A database of the test's own: no other test's tables have grown in it."""
    pool = await create_pool(make_settings().database_url or "")
    for table in ("grown", "steady"):
        await pool.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY, name text NOT NULL)")
    yield pool
    await pool.close()


async def add_rows(pool: asyncpg.Pool, table: str, first: int, count: int) -> None:
    """Insert rows, and make their count visible to every session's statistics at once."""
    async with pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO public.{table} SELECT i, 'name ' || i FROM generate_series($1::int, $2::int) i",
            first,
            first + count - 1,
        )
        await conn.execute("SELECT pg_stat_force_next_flush()")
    # The counters reach the shared statistics when the session is next idle; a statement later they are.
    async with pool.acquire() as conn:
        await conn.execute("SELECT 1")


async def test_a_table_is_analyzed_once_it_has_doubled_and_a_steady_one_is_not(pool: asyncpg.Pool) -> None:
    await add_rows(pool, "steady", 1, 10)
    await add_rows(pool, "grown", 1, 1_500)

    assert await analyze_grown(pool, LEAST) == ["public.grown"]
    assert await pool.fetchval(_LAST_ANALYZED, "grown") is not None
    assert await pool.fetchval(_LAST_ANALYZED, "steady") is None  # too few changes: autovacuum's
    assert await analyze_grown(pool, LEAST) == []  # nothing changed since

    await add_rows(pool, "grown", 1_501, 1_200)
    assert (
        await analyze_grown(pool, LEAST) == []
    )  # 2,700 rows against 1,500 at its last ANALYZE: not yet doubled
    await add_rows(pool, "grown", 2_701, 400)
    assert await analyze_grown(pool, LEAST) == ["public.grown"]  # 3,100 against 1,500


async def test_a_small_table_whose_rows_change_often_is_left_to_autovacuum(pool: asyncpg.Pool) -> None:
    # As a checkpoint or lease row is updated at every batch: many changes, no growth, no plan to renew.
    await add_rows(pool, "steady", 1, 5)
    async with pool.acquire() as conn:
        await conn.executemany(
            "UPDATE public.steady SET name = 'n' WHERE id = $1", [(i % 5 + 1,) for i in range(LEAST)]
        )
        await conn.execute("SELECT pg_stat_force_next_flush()")
    await pool.execute("SELECT 1")

    assert await analyze_grown(pool, LEAST) == []
    assert await pool.fetchval(_LAST_ANALYZED, "steady") is None


async def test_a_table_another_analyze_or_vacuum_holds_is_left_to_it_and_analyzed_later(
    pool: asyncpg.Pool,
) -> None:
    await add_rows(pool, "grown", 1, 1_500)
    async with pool.acquire() as holder, holder.transaction():
        # The lock ANALYZE and VACUUM take (writes do not conflict with it).
        await holder.execute("LOCK TABLE public.grown IN SHARE UPDATE EXCLUSIVE MODE")
        # Held until the call returns: a call that waited for the lock would never return.
        assert await analyze_grown(pool, LEAST) == []
    assert await pool.fetchval(_LAST_ANALYZED, "grown") is None
    assert await analyze_grown(pool, LEAST) == ["public.grown"]


async def test_a_plan_made_while_the_table_was_small_is_made_again_once_it_has_grown(
    pool: asyncpg.Pool,
) -> None:
    await add_rows(pool, "grown", 1, 3)
    await pool.execute("ANALYZE public.grown")
    async with pool.acquire() as conn:
        # A plan kept for every later execution, as a pool's statement cache keeps its statements.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE lookup(int) AS SELECT name FROM public.grown WHERE id = $1")

        async def plan() -> str:
            return "\n".join(row[0] for row in await conn.fetch("EXPLAIN EXECUTE lookup(1)"))

        assert "Seq Scan" in await plan()  # three rows: reading them all is cheapest
        await add_rows(pool, "grown", 4, 20_000)
        assert "Seq Scan" in await plan()  # the plan made for three rows, now reading 20,003

        assert await analyze_grown(pool, LEAST) == ["public.grown"]
        assert "Index Scan" in await plan()
        await conn.execute("DEALLOCATE lookup")
        await conn.execute("RESET plan_cache_mode")
