"""Helpers for the live tests: simulated projection commits, bounded waits, a backend, hub and notifier.

Projection commits are simulated: rows go into read.changes with SQL, then the Notifier publishes them.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import pytest
import redis.asyncio as aioredis
from broadcaster import Broadcast

from app.eventstore.position import Position
from app.live.backend import CATCH_UP, RedisPubSubBackend
from app.live.hub import Hub
from app.live.notices import ChangeNotice
from app.live.notifier import Notifier
from app.projections.base import record_changes
from app.settings import Settings

WAIT = 10.0
_positions = itertools.count(1)


def new_topic() -> str:
    return f"test:{uuid.uuid4().hex}"


def make_notices(topic: str, count: int, *, same_position: bool = False) -> list[ChangeNotice]:
    shared = Position(7, next(_positions))
    return [
        ChangeNotice(
            position=shared if same_position else Position(7, next(_positions)),
            topic=topic,
            kind="UPDATED",
            entity="Book",
            entity_id=str(uuid.uuid4()),
        )
        for _ in range(count)
    ]


def in_replay_order(notices: Sequence[ChangeNotice]) -> list[ChangeNotice]:
    return sorted(notices, key=lambda n: (n.position, n.entity_id))


async def record(pool: asyncpg.Pool, notices: Sequence[ChangeNotice]) -> None:
    """Write read.changes rows, as a projection's transaction does."""
    async with pool.acquire() as conn:
        await record_changes(conn, notices)


async def commit(pool: asyncpg.Pool, notifier: Notifier, notices: Sequence[ChangeNotice]) -> None:
    """Simulate a projection commit: the rows, then the notices."""
    await record(pool, notices)
    await notifier.publish(notices)


async def take(stream: AsyncIterator[ChangeNotice], count: int) -> list[ChangeNotice]:
    async def collect() -> list[ChangeNotice]:
        return [await anext(stream) for _ in range(count)]

    return await asyncio.wait_for(collect(), WAIT)


async def eventually(check: Callable[[], bool | Awaitable[bool]], message: str) -> None:
    """Poll a predicate until it holds, for at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        assert loop.time() < deadline, message
        await asyncio.sleep(0.02)


async def subscribed(backend: RedisPubSubBackend, *channels: str) -> None:
    """Subscribe the channels and return once Redis has confirmed each (its CATCH_UP arrived)."""
    for channel in channels:
        await backend.subscribe(channel)
    confirmed = [await asyncio.wait_for(backend.next_published(), WAIT) for _ in channels]
    assert sorted((e.channel, e.message) for e in confirmed) == sorted((c, CATCH_UP) for c in channels)


async def channel_subscribers(redis: aioredis.Redis, channel: str) -> int:
    counts = await redis.pubsub_numsub(channel)
    return int(counts[0][1])


async def unsubscribed(redis: aioredis.Redis, channel: str) -> bool:
    return await channel_subscribers(redis, channel) == 0


async def kill_connection(redis: aioredis.Redis, client_name: str) -> None:
    clients = [c for c in await redis.client_list() if c.get("name") == client_name]
    assert len(clients) == 1, f"expected one connection named {client_name}"
    await redis.client_kill_filter(_id=clients[0]["id"])


def unused_redis_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def backend(settings: Settings) -> AsyncIterator[RedisPubSubBackend]:
    backend = RedisPubSubBackend(settings.redis_url or "")
    await backend.connect()
    yield backend
    await asyncio.wait_for(backend.disconnect(), WAIT)


@pytest.fixture
async def broadcast(backend: RedisPubSubBackend) -> AsyncIterator[Broadcast]:
    broadcast = Broadcast(backend=backend)
    await broadcast.connect()  # connects the backend again: a no-op
    yield broadcast
    # Broadcast.disconnect also disconnects the backend; the backend fixture's second call is a no-op.
    await broadcast.disconnect()


@pytest.fixture
async def notifier(backend: RedisPubSubBackend, settings: Settings) -> AsyncIterator[Notifier]:
    notifier = Notifier(backend, settings)
    yield notifier
    await notifier.close()


@pytest.fixture
async def hub(broadcast: Broadcast, pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Hub]:
    hub = Hub(broadcast, pool, settings)
    yield hub
    await asyncio.wait_for(hub.close(), WAIT)
