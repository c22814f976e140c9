"""read.changes retention: purge_changes deletes old rows and raises the horizon in one step."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from app.db import create_pool
from app.eventstore.position import START, Position
from app.live.changes import retention_horizon
from app.projections.status import purge_changes
from app.settings import Settings

RETENTION_DAYS = 7.0


@pytest.fixture
async def pool(make_settings: Callable[[], Settings]) -> AsyncIterator[asyncpg.Pool]:
    """An empty database of the test's own: purges count every row and raise the horizon for good."""
    pool = await create_pool(make_settings().database_url or "")
    yield pool
    await pool.close()


async def add_change(pool: asyncpg.Pool, position: Position, *, age_days: float) -> None:
    await pool.execute(
        """INSERT INTO read.changes
               (topic, transaction_id, global_position, kind, entity, entity_id, recorded_at)
           VALUES ('test', $1, $2, 'UPDATED', 'Test', $3, now() - make_interval(days => $4))""",
        position.transaction_id,
        position.global_position,
        str(uuid.uuid4()),
        age_days,
    )


async def positions_kept(pool: asyncpg.Pool) -> list[Position]:
    rows = await pool.fetch("SELECT transaction_id, global_position FROM read.changes ORDER BY 1, 2")
    return [Position(row["transaction_id"], row["global_position"]) for row in rows]


async def test_purge_raises_the_horizon_to_the_highest_purged_position(pool: asyncpg.Pool) -> None:
    assert await retention_horizon(pool) == START
    # Commit order, not position order: (9, 5) committed after (8, 6).
    for position in (Position(8, 6), Position(9, 5), Position(8, 4)):
        await add_change(pool, position, age_days=8)
    await add_change(pool, Position(9, 7), age_days=1)

    assert await purge_changes(pool, RETENTION_DAYS) == 3
    assert await retention_horizon(pool) == Position(9, 5)
    assert await positions_kept(pool) == [Position(9, 7)]


async def test_the_horizon_never_moves_back(pool: asyncpg.Pool) -> None:
    await add_change(pool, Position(9, 5), age_days=8)
    assert await purge_changes(pool, RETENTION_DAYS) == 1
    assert await purge_changes(pool, RETENTION_DAYS) == 0  # nothing old: the horizon stays
    assert await retention_horizon(pool) == Position(9, 5)

    await add_change(pool, Position(8, 6), age_days=9)  # a straggler below the horizon
    assert await purge_changes(pool, RETENTION_DAYS) == 1
    assert await retention_horizon(pool) == Position(9, 5)
