"""Helpers for the bus tests: an isolated environment, a counting consumer, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from app.aio import cancel_and_wait
from app.bus.checkpoints import load_checkpoint, save_checkpoint
from app.bus.keeper import LeaseKeeper
from app.db import create_pool
from app.domain.errors import ValidationError
from app.events import Metadata
from app.events.catalog import AuthorCreated
from app.eventstore import EventStore, Position, RecordedEvent
from app.ids import new_id
from app.live.notices import ChangeNotice
from app.settings import Settings

SCRATCH = """
CREATE TABLE IF NOT EXISTS public.bus_applied (
    consumer     text    NOT NULL,
    event_id     uuid    NOT NULL,
    applications integer NOT NULL DEFAULT 1,
    seq          bigint  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (consumer, event_id)
)
"""
_RECORD = """
INSERT INTO public.bus_applied (consumer, event_id) VALUES ($1, $2::uuid)
ON CONFLICT (consumer, event_id) DO UPDATE SET applications = bus_applied.applications + 1
"""
META = Metadata(actor="test", correlation_id="bus-test")


class CountingConsumer:
    """Counts applications per event id in public.bus_applied; fails on demand."""

    def __init__(self, name: str = "counter") -> None:
        self.name = name
        self.failing: set[str] = set()  # author names whose events raise RuntimeError
        self.invalid: set[str] = set()  # author names whose events raise ValidationError
        self.attempts: Counter[str] = Counter()

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        return await load_checkpoint(conn, self.name, lock=True)

    async def save_checkpoint(self, conn: asyncpg.Connection, position: Position) -> None:
        await save_checkpoint(conn, self.name, position)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        for event in events:
            self.attempts[event.event_id] += 1
            if event.data["name"] in self.invalid:
                raise ValidationError.single("name", "not acceptable")
            if event.data["name"] in self.failing:
                raise RuntimeError(f"cannot apply {event.event_id}")
        await conn.executemany(_RECORD, [(self.name, e.event_id) for e in events])
        return [_notice(e) for e in events]


def _notice(event: RecordedEvent) -> ChangeNotice:
    return ChangeNotice(
        position=event.position, topic="test", kind="CREATED", entity="Author", entity_id=event.stream_id
    )


@dataclass
class BusEnv:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    store: EventStore
    keeper: LeaseKeeper  # renews the leases of every runner a test starts, as in a worker process
    published: list[ChangeNotice] = field(default_factory=list)
    catch_ups: int = 0  # how many times a runner said notices may have been lost
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def publish(self, notices: Sequence[ChangeNotice]) -> None:
        self.published.extend(notices)

    async def catch_up_everyone(self) -> bool:
        self.catch_ups += 1
        return True

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task

    async def append(self, count: int = 1, *, per_transaction: int = 1) -> list[RecordedEvent]:
        """Append `count` transactions of new AuthorCreated events; return them as recorded."""
        before = await self.store.head()
        for _ in range(count):
            async with self.pool.acquire() as conn, conn.transaction():
                await append_authors(self.store, conn, [f"author {i}" for i in range(per_transaction)])
        return await self.read_after(before, count * per_transaction)

    async def read_after(self, before: Position, count: int) -> list[RecordedEvent]:
        """Return the `count` events after `before`, once commit order shows them all.

        Any transaction still open elsewhere (a consumer's batch, say) hides later commits for a moment.
        """
        found: list[RecordedEvent] = []

        async def visible() -> bool:
            found[:] = await self.store.read_all(before, limit=10_000)
            return len(found) >= count

        await wait_until(visible, what=f"{count} appended events to become visible")
        return found

    async def applied(self, consumer: str = "counter") -> dict[str, int]:
        """Return applications per event id, in the order they were first applied."""
        rows = await self.pool.fetch(
            "SELECT event_id::text, applications FROM public.bus_applied WHERE consumer = $1 ORDER BY seq",
            consumer,
        )
        return {r[0]: r[1] for r in rows}

    async def stream(self, name: str | None = None) -> list[dict[str, str]]:
        entries: Any = await self.redis.xrange(name or self.settings.events_stream)
        return [{_s(k): _s(v) for k, v in fields.items()} for _, fields in entries]


async def append_authors(store: EventStore, conn: asyncpg.Connection, names: Sequence[str]) -> Position:
    """Append one AuthorCreated per name to a new stream inside the caller's transaction."""
    events = [AuthorCreated(author_id=new_id(), name=name) for name in names]
    return await store.append(
        conn, stream_id=new_id(), stream_type="Author", expected_version=0, events=events, metadata=META
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it, as a crash would stop it (nothing released); raise what it raised."""
    await cancel_and_wait([task])
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error


@contextlib.asynccontextmanager
async def bus_env(settings: Settings, redis_url: str | None = None) -> AsyncIterator[BusEnv]:
    """Open a pool, a Redis client, an event store and a lease keeper on `settings` (a fresh database)."""
    assert settings.database_url
    pool = await create_pool(settings.database_url, size=8)
    client = aioredis.Redis.from_url(redis_url or settings.redis_url or "")
    await pool.execute(SCRATCH)
    keeper = LeaseKeeper(settings.database_url, settings.lease_ttl)
    keeper.start()
    env = BusEnv(settings, pool, client, EventStore(pool), keeper)
    try:
        yield env
    finally:
        for task in env.tasks:
            await stop(task)
        await keeper.stop()
        with contextlib.suppress(Exception):
            await client.delete(settings.events_stream, settings.dead_letter_stream)
        await client.aclose()
        await pool.close()


async def wait_until(check: Callable[[], Awaitable[bool]], *, what: str, within: float = 10.0) -> None:
    """Poll `check` until it is true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def event_ids(events: Sequence[RecordedEvent]) -> list[str]:
    return [str(uuid.UUID(e.event_id)) for e in events]
