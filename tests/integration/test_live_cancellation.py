"""Cancelling a live subscription at any moment leaves no Redis channel subscribed and no task behind.

Thousands of subscribe-then-cancel cycles, each cancelled at a random point: before the first step,
while Redis is still confirming SUBSCRIBE, while the replay or the newest position is read, or once
live. Then PUBSUB must show no channel of these topics, and every cancelled task must have ended with
CancelledError, not with something raised while it cleaned up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis
from broadcaster import Broadcast

from app.eventstore.position import START
from app.live.hub import Hub
from app.settings import Settings
from tests.integration.live_support import WAIT, backend, broadcast, eventually, hub

__all__ = ["backend", "broadcast", "hub"]  # the fixtures, so pytest finds them here

CYCLES = 3_000
AT_ONCE = 50  # cycles in flight together
TOPICS = 40  # far fewer than cycles: joins and leaves of one channel overlap all the time


async def cancellation_point(rng: random.Random) -> None:
    """Return after a random amount of progress: none, a few loop steps, or up to a few milliseconds."""
    choice = rng.random()
    if choice < 0.1:
        return
    if choice < 0.7:
        for _ in range(rng.randint(1, 40)):
            await asyncio.sleep(0)
        return
    await asyncio.sleep(rng.uniform(0, 0.005))


async def cancelled_at_random(work: Coroutine[Any, Any, None], rng: random.Random) -> str:
    """Start `work`, cancel it at a random point; return how it ended ("cancelled" when all went well)."""
    task = asyncio.ensure_future(work)
    await cancellation_point(rng)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=WAIT)
    if not done:
        return "still running long after its cancellation"
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return "ended without being cancelled" if error is None else f"raised {type(error).__name__}"


async def run_cycles(cycle: Callable[[int], Awaitable[None]]) -> None:
    """Run CYCLES cycles, AT_ONCE at a time."""
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(number: int) -> None:
        async with slots:
            await cycle(number)

    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(CYCLES))), 20 * WAIT)


async def subscribed_channels(redis: aioredis.Redis, pattern: str) -> list[str]:
    channels: list[str] = await redis.pubsub_channels(pattern)
    return channels


async def no_channel_left(redis: aioredis.Redis, settings: Settings, family: str, topics: list[str]) -> None:
    pattern = settings.changes_channel(f"{family}:*")
    await eventually(
        lambda: _none(subscribed_channels(redis, pattern)), f"channels still subscribed: {pattern}"
    )
    counts = await redis.pubsub_numsub(*(settings.changes_channel(topic) for topic in topics))
    assert [count for _, count in counts] == [0] * len(topics)


async def _none(channels: Awaitable[list[str]]) -> bool:
    return not await channels


def topic_family() -> tuple[str, list[str]]:
    family = f"cancel-{uuid.uuid4().hex[:12]}"
    return family, [f"{family}:{i}" for i in range(TOPICS)]


async def test_cancelled_hub_subscriptions_leave_no_channel_and_no_task(
    hub: Hub, redis: aioredis.Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    family, topics = topic_family()

    async def read(topic: str) -> None:
        async with contextlib.aclosing(hub.subscribe(topic, START if rng.random() < 0.3 else None)) as stream:
            async for _ in stream:
                pass

    warm_up = asyncio.ensure_future(read(f"{family}:warm-up"))  # the hub's own tasks start now
    await asyncio.sleep(0.2)
    warm_up.cancel()
    await asyncio.wait([warm_up], timeout=WAIT)
    baseline = len(asyncio.all_tasks())
    outcomes: Counter[str] = Counter()

    async def cycle(_: int) -> None:
        outcomes[await cancelled_at_random(read(rng.choice(topics)), rng)] += 1

    caplog.set_level(logging.WARNING, logger="app.live")
    await run_cycles(cycle)

    assert outcomes == {"cancelled": CYCLES}, f"seed {seed}"
    await eventually(lambda: not hub.topics(), f"topics still open (seed {seed})")
    await no_channel_left(redis, settings, family, topics)
    await eventually(lambda: len(asyncio.all_tasks()) <= baseline, f"tasks left behind (seed {seed})")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("app.live")] == []


async def test_cancelled_broadcast_subscriptions_end_cancelled_and_leave_no_channel(
    broadcast: Broadcast, redis: aioredis.Redis, settings: Settings
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    family, topics = topic_family()
    ended: Counter[str] = Counter()

    async def listen(channel: str) -> None:
        async with broadcast.subscribe(channel) as events:
            while True:  # the first message is the CATCH_UP of Redis confirming the subscription
                await events.get()

    async def cycle(_: int) -> None:
        ended[await cancelled_at_random(listen(settings.changes_channel(rng.choice(topics))), rng)] += 1

    await run_cycles(cycle)

    assert ended == {"cancelled": CYCLES}, f"seed {seed}"
    await no_channel_left(redis, settings, family, topics)
