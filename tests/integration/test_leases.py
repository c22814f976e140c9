"""Leases against real PostgreSQL: renewal nothing in the process can hold back, and fencing that still holds.

The LeaseKeeper renews from a thread and connection of its own; a batch fences FOR KEY SHARE, which the
renewal's UPDATE does not wait for; a takeover takes FOR UPDATE first, so it waits for the holder's batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence

import asyncpg
import pytest

from app.bus.checkpoints import OwnCheckpoint
from app.bus.consumer import ConsumerRunner
from app.bus.lease import Lease, LeaseLost
from app.bus.protocol import type_names
from app.bus.relay import Relay
from app.events.catalog import AuthorCreated
from app.eventstore import RecordedEvent
from app.live.notices import ChangeNotice
from app.settings import Settings
from tests.integration.bus_support import BusEnv, CountingConsumer, bus_env, wait_until

TTL = 1.5  # seconds; the keeper renews every 0.5 s


@pytest.fixture
async def env(make_settings: Callable[[], Settings]) -> AsyncIterator[BusEnv]:
    async with bus_env(dataclasses.replace(make_settings(), lease_ttl=TTL)) as env:
        yield env


def lease(env: BusEnv, name: str = "counter") -> Lease:
    return Lease(env.pool, name, TTL)


async def held_by(env: BusEnv, name: str = "counter") -> str | None:
    """The owner of lease `name` if it is unexpired, else None."""
    owner: str | None = await env.pool.fetchval(
        "SELECT owner FROM bus.leases WHERE name = $1 AND expires_at > clock_timestamp()", name
    )
    return owner


async def test_a_batch_longer_than_the_ttl_keeps_its_lease_and_a_standby_cannot_take_it(env: BusEnv) -> None:
    holder, standby = lease(env), lease(env)
    assert await holder.try_acquire()
    lost = env.keeper.hold(holder)
    async with env.pool.acquire() as conn, conn.transaction():
        await holder.fence(conn)
        await asyncio.sleep(2 * TTL)  # a long catch-up batch; the keeper renews meanwhile
        taking = asyncio.create_task(standby.try_acquire())
        await asyncio.sleep(0.2)
        await holder.fence(conn)
    assert not await taking
    assert not lost.is_set()
    assert await held_by(env) == holder.owner
    env.keeper.drop(holder)


async def test_a_takeover_waits_for_the_batch_in_flight_then_takes_the_expired_lease(env: BusEnv) -> None:
    holder, standby = lease(env), lease(env)
    assert await holder.try_acquire()  # not renewed: a holder that froze mid-batch
    async with env.pool.acquire() as conn, conn.transaction():
        await holder.fence(conn)
        await env.pool.execute("UPDATE bus.leases SET expires_at = clock_timestamp() - interval '1 second'")
        taking = asyncio.create_task(standby.try_acquire())
        await asyncio.sleep(0.5)
        assert not taking.done()  # the takeover waits for this batch to commit
    assert await taking
    assert await held_by(env) == standby.owner
    async with env.pool.acquire() as conn, conn.transaction():
        with pytest.raises(LeaseLost):
            await holder.fence(conn)


async def test_a_takeover_waits_at_most_a_ttl_for_the_batch_in_flight(env: BusEnv) -> None:
    holder, standby = lease(env), lease(env)
    assert await holder.try_acquire()
    async with env.pool.acquire() as conn, conn.transaction():
        await holder.fence(conn)
        await env.pool.execute("UPDATE bus.leases SET expires_at = clock_timestamp() - interval '1 second'")
        started = time.monotonic()
        assert not await standby.try_acquire()  # the lock wait timed out: looked again at the next poll
        assert time.monotonic() - started >= TTL * 0.9
    assert await env.pool.fetchval("SELECT owner FROM bus.leases") == holder.owner


def _burn(seconds: float) -> None:
    """Keep the event loop busy without yielding, as a CPU-heavy request or batch does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1_000))


async def test_leases_are_renewed_while_the_event_loop_is_busy(env: BusEnv) -> None:
    holders = [lease(env, f"busy-{i}") for i in range(3)]
    for holder in holders:
        assert await holder.try_acquire()
    lost = [env.keeper.hold(holder) for holder in holders]
    _burn(2 * TTL)
    assert [await held_by(env, h.name) for h in holders] == [h.owner for h in holders]
    await asyncio.sleep(0)  # let a loss signalled meanwhile arrive
    assert not any(event.is_set() for event in lost)
    for holder in holders:
        env.keeper.drop(holder)


async def test_the_keeper_tells_the_holder_when_another_owner_has_the_lease(env: BusEnv) -> None:
    holder = lease(env)
    assert await holder.try_acquire()
    lost = env.keeper.hold(holder)
    await env.pool.execute("UPDATE bus.leases SET owner = 'someone else'")
    await asyncio.wait_for(lost.wait(), 2 * TTL)


async def test_the_keeper_reconnects_when_its_connection_is_cut(env: BusEnv) -> None:
    holder = lease(env)
    assert await holder.try_acquire()
    lost = env.keeper.hold(holder)

    async def cut() -> bool:
        return bool(
            await env.pool.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE application_name = 'bookworm-lease-keeper' AND datname = current_database()"""
            )
        )

    await wait_until(cut, what="the keeper's connection to be cut")
    await asyncio.sleep(2 * TTL)
    assert await held_by(env) == holder.owner
    assert not lost.is_set()
    env.keeper.drop(holder)


class SlowCounter(CountingConsumer, OwnCheckpoint):
    """Counts AuthorCreated events; its first batch takes `first_batch_seconds`, like a long catch-up."""

    handles = type_names(AuthorCreated)

    def __init__(self, first_batch_seconds: float) -> None:
        super().__init__("counter")
        self.first_batch_seconds = first_batch_seconds
        self.batches = 0

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        self.batches += 1
        if self.batches == 1:
            await asyncio.sleep(self.first_batch_seconds)
        return await super().apply(conn, events)


async def test_a_runner_keeps_leading_through_a_batch_longer_than_the_ttl(env: BusEnv) -> None:
    env.start(Relay(env.settings, env.pool, env.redis, env.store).run())
    slow = SlowCounter(first_batch_seconds=2 * TTL)
    first = ConsumerRunner(env.settings, env.pool, env.redis, env.store, slow, env, env.keeper)
    env.start(first.run())

    async def first_leads() -> bool:
        return first.is_active

    await wait_until(first_leads, what="the first runner to lead")
    second = ConsumerRunner(env.settings, env.pool, env.redis, env.store, SlowCounter(0), env, env.keeper)
    env.start(second.run())
    standing_by: set[str] = set()

    async def watch() -> None:
        while True:
            standing_by.update(runner.owner for runner in (first, second) if not runner.is_active)
            await asyncio.sleep(0.01)

    env.start(watch())
    await env.append(3)

    async def applied() -> bool:
        return len(await env.applied()) == 3

    await wait_until(applied, what="3 events applied", within=10 * TTL)
    await asyncio.sleep(TTL)  # time for a lost lease to show
    assert slow.batches >= 1
    assert standing_by == {second.owner}  # the first never stood by, the second never led
    assert await held_by(env) == first.owner
    assert set((await env.applied()).values()) == {1}
