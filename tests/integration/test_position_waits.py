"""Read-your-writes waits against real PostgreSQL: woken by checkpoint notices, not by polling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
import pytest

from app.bus.applier import Applier
from app.bus.lease import Lease
from app.eventstore import Position, RecordedEvent
from app.live.checkpoints import CHANNEL
from app.projections import PROJECTIONS, ProjectionConsumer
from app.queries.consistency import RECHECK_INTERVAL, PositionWaiters, TooManyWaiters
from app.settings import Settings
from tests.integration.bus_support import BusEnv, bus_env, wait_until

NEVER = Position(2**62, 0)
WAIT = 10.0


class CountingPool:
    """The pool, counting the queries PositionWaiters sends through it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.queries = 0

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(query, *args)
        self.queries += 1
        return rows


@pytest.fixture(scope="module")
async def env(make_settings: Callable[[], Settings]) -> AsyncIterator[BusEnv]:
    """A database of this module's own: each test appends newer events and moves checkpoints past them."""
    async with bus_env(make_settings()) as env:
        yield env


async def started(env: BusEnv, **options: Any) -> tuple[PositionWaiters, CountingPool]:
    counting = CountingPool(env.pool)
    assert env.settings.database_url
    waiters = PositionWaiters(counting, env.settings.database_url, PROJECTIONS, **options)  # type: ignore[arg-type]
    await waiters.start()
    return waiters, counting


@pytest.fixture
async def quiet(env: BusEnv) -> AsyncIterator[tuple[PositionWaiters, CountingPool]]:
    """Waiters whose fallback re-read never comes within a test: only a notice can wake them."""
    waiters, counting = await started(env, recheck=3600.0)
    yield waiters, counting
    await waiters.close()


async def applier(env: BusEnv, projection: str) -> Applier:
    """The bus runner's applier for `projection`, holding its lease."""
    lease = Lease(env.pool, projection, ttl=30.0, owner="position-waits-test")
    assert await lease.try_acquire()
    consumer = ProjectionConsumer(PROJECTIONS[projection])
    applier = Applier(env.settings, env.pool, env.redis, consumer, lease, env)
    await applier.refresh()
    return applier


async def commit(env: BusEnv, projection: str, events: Sequence[RecordedEvent]) -> None:
    """Apply `events` in one batch transaction and move the checkpoint past them."""
    await (await applier(env, projection)).apply(events, events[-1].position)


async def skip(env: BusEnv, projection: str, events: Sequence[RecordedEvent]) -> None:
    """Move the checkpoint past events the projection ignores: the fenced one-statement move."""
    await (await applier(env, projection)).apply([], events[-1].position)


async def registered(waiters: PositionWaiters, counting: CountingPool, queries: int = 1) -> None:
    async def ready() -> bool:
        return waiters.waiting == 1 and counting.queries >= queries

    await wait_until(ready, what="the waiter to register and read its checkpoint")


async def test_a_batch_commit_past_the_position_wakes_the_waiter(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool]
) -> None:
    waiters, counting = quiet
    events = await env.append(2)
    waiter = asyncio.create_task(waiters.wait("catalog", events[-1].position, WAIT))
    await registered(waiters, counting)

    await commit(env, "catalog", events)

    assert await asyncio.wait_for(waiter, WAIT)
    assert counting.queries == 1  # the one read at the start: the notice woke it
    assert waiters.waiting == 0 and waiters.awaited() == []


async def test_a_move_past_ignored_events_wakes_the_waiter(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool]
) -> None:
    waiters, counting = quiet
    events = await env.append()  # AuthorCreated: the rating projection ignores it
    assert events[0].event_type not in PROJECTIONS["rating"].handles
    waiter = asyncio.create_task(waiters.wait("rating", events[-1].position, WAIT))
    await registered(waiters, counting)

    await skip(env, "rating", events)

    assert await asyncio.wait_for(waiter, WAIT)
    assert counting.queries == 1


async def test_a_position_already_passed_needs_no_query_once_known(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool]
) -> None:
    waiters, counting = quiet
    events = await env.append()
    await commit(env, "catalog", events)
    assert await waiters.wait("catalog", events[-1].position, 0.0)  # heard, or read once
    before = counting.queries
    assert await waiters.wait("catalog", events[-1].position, 0.0)
    assert counting.queries == before


async def test_wait_all_waits_for_every_projection_within_one_timeout(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool]
) -> None:
    waiters, counting = quiet
    events = await env.append()
    position = events[-1].position
    await commit(env, "catalog", events)
    assert await waiters.wait_all(["catalog", "rating"], position, 0.2) == ["rating"]

    waiter = asyncio.create_task(waiters.wait_all(["catalog", "rating", "basket"], position, WAIT))
    await registered(waiters, counting, queries=2)
    await skip(env, "rating", events)
    await skip(env, "basket", events)
    assert await asyncio.wait_for(waiter, WAIT) == []


async def test_a_timeout_answers_false_and_leaves_no_waiter(
    quiet: tuple[PositionWaiters, CountingPool],
) -> None:
    waiters, _ = quiet
    assert not await waiters.wait("catalog", NEVER, 0.1)
    assert waiters.waiting == 0 and waiters.awaited() == []


async def test_a_cancelled_wait_leaves_no_waiter(quiet: tuple[PositionWaiters, CountingPool]) -> None:
    waiters, counting = quiet
    waiter = asyncio.create_task(waiters.wait_all(["catalog", "ordering"], NEVER, WAIT))
    await registered(waiters, counting)
    assert waiters.awaited() == ["catalog", "ordering"]

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert waiters.waiting == 0 and waiters.awaited() == []


async def test_one_wait_more_than_the_limit_is_refused(env: BusEnv) -> None:
    waiters, counting = await started(env, limit=1, recheck=3600.0)
    try:
        first = asyncio.create_task(waiters.wait("catalog", NEVER, WAIT))
        await registered(waiters, counting)
        with pytest.raises(TooManyWaiters):
            await waiters.wait("catalog", NEVER, WAIT)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert not await waiters.wait("catalog", NEVER, 0.0)  # the slot is free again
    finally:
        await waiters.close()


async def test_a_lost_notice_is_recovered_by_the_fallback_re_read(env: BusEnv) -> None:
    waiters, counting = await started(env, recheck=0.2)
    try:
        events = await env.append()
        waiter = asyncio.create_task(waiters.wait("catalog", events[-1].position, WAIT))
        await registered(waiters, counting)

        await move_silently(env.pool, "catalog", events[-1].position)

        assert await asyncio.wait_for(waiter, WAIT)
        assert counting.queries >= 2  # the start, then the fallback re-read that found it
    finally:
        await waiters.close()


async def move_silently(pool: asyncpg.Pool, projection: str, position: Position) -> None:
    """Move a checkpoint with triggers off: no notice is sent, as if it had been lost."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE read.projections SET transaction_id = $2, global_position = $3 WHERE name = $1",
            projection,
            position.transaction_id,
            position.global_position,
        )


async def test_the_listener_reconnects_and_reads_what_it_missed(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool]
) -> None:
    waiters, counting = quiet
    listener = waiters.listener
    await env.pool.execute("SELECT pg_terminate_backend($1)", listener.server_pid)
    events = await env.append()
    await commit(env, "catalog", events)  # while the listener is gone, or just back

    async def reconnected() -> bool:
        return listener.connections == 2 and listener.listening

    await wait_until(reconnected, what="the listener to reconnect")
    assert await waiters.wait("catalog", events[-1].position, 0.0)
    assert counting.queries == 0  # known from the listener's own read on reconnection

    later = await env.append()
    waiter = asyncio.create_task(waiters.wait("catalog", later[-1].position, WAIT))
    await registered(waiters, counting)
    await commit(env, "catalog", later)
    assert await asyncio.wait_for(waiter, WAIT)


async def test_malformed_notices_are_ignored_and_logged_once(
    env: BusEnv, quiet: tuple[PositionWaiters, CountingPool], caplog: pytest.LogCaptureFixture
) -> None:
    waiters, counting = quiet
    events = await env.append()
    waiter = asyncio.create_task(waiters.wait("catalog", events[-1].position, WAIT))
    await registered(waiters, counting)
    with caplog.at_level(logging.WARNING, logger="app.live.checkpoints"):
        for payload in ("garbage", "catalog 1", "catalog x 2", "catalog 99999999999999999999 1"):
            await env.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        await commit(env, "catalog", events)
        assert await asyncio.wait_for(waiter, WAIT)
    assert [r.message for r in caplog.records if "malformed" in r.message] == [
        "ignoring a malformed checkpoint notice (logged once): 'garbage'"
    ]


async def test_a_one_second_wait_costs_a_few_queries(env: BusEnv) -> None:
    waiters, counting = await started(env)
    try:
        assert not await waiters.wait("catalog", NEVER, 1.0)
    finally:
        await waiters.close()
    # One read at the start, then the fallback re-read every RECHECK_INTERVAL (polling took 100).
    assert counting.queries <= 1 + round(1.0 / RECHECK_INTERVAL)


async def test_an_unreachable_database_leaves_the_listener_retrying(env: BusEnv) -> None:
    waiters = PositionWaiters(env.pool, "postgresql://postgres@127.0.0.1:1/none", PROJECTIONS)
    await waiters.start()  # does not raise: the API starts, waits fall back to re-reads
    try:
        assert not waiters.listener.listening
    finally:
        await waiters.close()
