"""The figures /metrics reads from PostgreSQL: each checkpoint's lag, dead letters, and what a scrape gets
when the database does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from prometheus_client.metrics_core import Metric

from app.bus.checkpoints import save_checkpoint
from app.bus.relay import CHECKPOINT as RELAY
from app.db import create_pool
from app.events.base import Metadata
from app.events.catalog import AuthorCreated
from app.eventstore import EventStore, Position
from app.ids import new_id
from app.metrics.database import DatabaseFigures
from app.settings import Settings

META = Metadata(actor="test", correlation_id="c")
VISIBLE_WITHIN = 120.0  # another database's long transaction on the server holds new events back meanwhile


@pytest.fixture
async def fresh_pool(make_settings: Callable[[], Settings]) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of its own: no relay, consumer or other test moves its checkpoints."""
    url = make_settings().database_url
    assert url
    pool = await create_pool(url)
    yield pool
    await pool.close()


async def append_authors(pool: asyncpg.Pool, count: int) -> Position:
    """Append `count` events; return the last one's position once commit-order readers can see it."""
    store = EventStore(pool)
    async with pool.acquire() as conn:
        for _ in range(count):
            stream = new_id()
            events = [AuthorCreated(author_id=stream, name="a")]
            last = await store.append(
                conn, stream_id=stream, stream_type="Author", expected_version=0, events=events, metadata=META
            )
    async with asyncio.timeout(VISIBLE_WITHIN):
        while await store.head() < last:  # noqa: ASYNC110 (no event says when another transaction ends)
            await asyncio.sleep(0.05)
    return last


def values(families: list[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in families
        for sample in family.samples
    }


async def test_each_checkpoint_reports_the_events_behind_it_up_to_the_cap(fresh_pool: asyncpg.Pool) -> None:
    await append_authors(fresh_pool, 3)
    read = values(await DatabaseFigures(max_age=0, count_cap=2).read(fresh_pool))
    assert read[("bookworm_database_figures_up", ())] == 1
    # No relay ran: it is at the start, as every projection is; the cap stops the count at two.
    assert read[("bookworm_lag_events", ("relay", RELAY))] == 2
    assert read[("bookworm_lag_events", ("projection", "catalog"))] == 2
    assert read[("bookworm_lag_seconds", ("relay", RELAY))] > 0
    assert read[("bookworm_dead_letters", ("catalog",))] == 0
    assert ("bookworm_dead_letters", (RELAY,)) not in read


async def test_a_checkpoint_at_the_head_has_no_lag(fresh_pool: asyncpg.Pool) -> None:
    last = await append_authors(fresh_pool, 2)
    async with fresh_pool.acquire() as conn:
        await save_checkpoint(conn, RELAY, last)
    read = values(await DatabaseFigures(max_age=0).read(fresh_pool))
    assert read[("bookworm_lag_events", ("relay", RELAY))] == 0
    assert read[("bookworm_lag_seconds", ("relay", RELAY))] == 0
    assert read[("bookworm_lag_events", ("projection", "catalog"))] == 2


async def test_unresolved_dead_letters_are_counted_by_consumer(fresh_pool: asyncpg.Pool) -> None:
    await fresh_pool.execute(
        """INSERT INTO bus.dead_letters
            (consumer, transaction_id, global_position, event_id, event_type, stream_id, error, attempts)
        VALUES ('catalog', 1, 1, gen_random_uuid(), 'AuthorCreated', 's', 'boom', 3),
               ('catalog', 1, 2, gen_random_uuid(), 'AuthorCreated', 's', 'boom', 3)"""
    )
    read = values(await DatabaseFigures(max_age=0).read(fresh_pool))
    assert read[("bookworm_dead_letters", ("catalog",))] == 2
    assert read[("bookworm_dead_letters", ("rating",))] == 0


async def test_scrapes_within_a_second_share_one_reading(fresh_pool: asyncpg.Pool) -> None:
    figures = DatabaseFigures(max_age=3600)
    first = await figures.read(fresh_pool)
    await append_authors(fresh_pool, 1)
    assert await figures.read(fresh_pool) is first


async def test_a_database_that_does_not_answer_leaves_the_figures_out(
    make_settings: Callable[[], Settings],
) -> None:
    url = make_settings().database_url
    assert url
    pool = await create_pool(url)
    await pool.close()
    read = values(await DatabaseFigures(max_age=0).read(pool))
    assert read == {("bookworm_database_figures_up", ()): 0}
