"""The hub's shared catch-up: one read of read.changes per topic, whatever the number of subscribers.

Projection commits are simulated as in test_live.py: rows into read.changes, then the Notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import asyncpg
import pytest
from broadcaster import Broadcast

from app.db import create_pool
from app.domain.errors import UnavailableError
from app.eventstore.position import START, Position
from app.live.catchup import PAGE
from app.live.hub import Hub
from app.live.notices import ChangeNotice
from app.live.notifier import Notifier
from app.settings import Settings
from tests.integration.live_support import (
    WAIT,
    backend,
    broadcast,
    commit,
    eventually,
    hub,
    in_replay_order,
    make_notices,
    new_topic,
    notifier,
    record,
    take,
)

__all__ = ["backend", "broadcast", "hub", "notifier"]  # the fixtures, so pytest finds them here


@dataclass
class Follower:
    """A task taking a subscription's notices, optionally slowly; what it got, and in which round."""

    stream: AsyncIterator[ChangeNotice]
    delay: float = 0.0
    received: list[ChangeNotice] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # loop time of each
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async for notice in self.stream:
            self.received.append(notice)
            self.arrived.append(asyncio.get_running_loop().time())
            if self.delay:
                await asyncio.sleep(self.delay)

    def has(self, notices: list[ChangeNotice]) -> bool:
        return set(notices) <= set(self.received)


@contextlib.asynccontextmanager
async def following(
    hub: Hub, topic: str, after: Position | None, delay: float = 0.0
) -> AsyncIterator[Follower]:
    follower = Follower(hub.subscribe(topic, after), delay)
    follower.task = asyncio.create_task(follower.run())
    try:
        yield follower
    finally:
        follower.task.cancel()
        await asyncio.gather(follower.task, return_exceptions=True)


async def until_live(
    followers: list[Follower], topics: list[str], pool: asyncpg.Pool, notifier: Notifier
) -> None:
    """Publish a change per topic until every follower has one of them: all are live then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        probes = [make_notices(topic, 1)[0] for topic in topics]
        await commit(pool, notifier, probes)
        await asyncio.sleep(0.05)
        if all(any(p in f.received for p in probes) for f in followers):
            return
        assert loop.time() < deadline, "the followers never went live"


async def test_one_catch_up_reads_each_topic_once_for_all_its_subscribers(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool
) -> None:
    shared, own = new_topic(), [new_topic() for _ in range(300)]
    async with contextlib.AsyncExitStack() as stack:
        many = [await stack.enter_async_context(following(hub, shared, None)) for _ in range(200)]
        alone = [await stack.enter_async_context(following(hub, topic, None)) for topic in own]
        await until_live([*many, *alone], [shared, *own], pool, notifier)
        reads = hub.catch_up.reads

        assert await notifier.catch_up_everyone()  # nothing was lost
        await eventually(lambda: hub.catch_up.reads > reads, "no catch-up")
        await asyncio.sleep(0.2)
        assert hub.catch_up.reads == reads + 1  # 301 topics, one statement

        lost = make_notices(shared, 2)
        await record(pool, lost)  # committed, never announced: what a killed worker leaves
        received = [len(f.received) for f in many]
        assert await notifier.catch_up_everyone()
        await eventually(lambda: all(f.has(lost) for f in many), "the lost changes never arrived")
        assert hub.catch_up.reads == reads + 2
        await asyncio.sleep(0.2)
        assert [f.received[count:] for f, count in zip(many, received, strict=True)] == [lost] * len(many)


async def test_subscribers_at_different_positions_share_reads_and_nobody_waits_for_a_long_replay(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool
) -> None:
    topic = new_topic()
    history = make_notices(topic, 3 * PAGE)  # the oldest resume needs three pages
    await commit(pool, notifier, history)
    afters = [
        START,
        history[100].position,
        history[-10].position,
        history[-10].position,
        history[-1].position,
    ]
    expected = [history, history[101:], history[-9:], history[-9:], []]
    reads = hub.catch_up.reads
    async with contextlib.AsyncExitStack() as stack:
        followers = [await stack.enter_async_context(following(hub, topic, after)) for after in afters]
        await eventually(
            lambda: all(f.has(e) for f, e in zip(followers, expected, strict=True)), "not replayed"
        )
        replay_reads = hub.catch_up.reads - reads
        live = make_notices(topic, 3)
        await commit(pool, notifier, live)
        await eventually(lambda: all(f.has(live) for f in followers), "never went live")
        assert [f.received for f in followers] == [[*e, *live] for e in expected]
    # The first round reads twice: from the lowest cursor, then from the lowest of those past that
    # page, which are served at once and do not wait for the far ones' replay. The two far ones then
    # read the rest page by page (4 pages for the farthest), together or in turns.
    assert 5 <= replay_reads <= 8  # one read per subscriber and page would be 10
    far, near = followers[0], followers[2:4]
    assert max(f.arrived[len(expected[2]) - 1] for f in near) < far.arrived[len(history) - 1]


async def test_catch_ups_under_a_stream_of_changes_lose_nothing_and_repeat_nothing(
    broadcast: Broadcast, notifier: Notifier, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Small queues, slow followers, catch-up announcements and notices that are never published, all
    # while changes keep coming: every follower must get every change once, in order.
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    small = Hub(broadcast, pool, replace(settings, subscriber_queue_size=4))
    topics = [new_topic(), new_topic()]
    written: dict[str, list[ChangeNotice]] = {topic: [] for topic in topics}
    try:
        async with contextlib.AsyncExitStack() as stack:
            followers = [
                (topic, await stack.enter_async_context(following(small, topic, START, delay)))
                for topic in topics
                for delay in (0.0, 0.0, 0.0005, 0.002)
            ]
            deepest = 0
            for step in range(150):
                topic = rng.choice(topics)
                batch = make_notices(topic, rng.randint(1, 12), same_position=rng.random() < 0.2)
                written[topic] += in_replay_order(batch)
                if rng.random() < 0.05:
                    await record(pool, batch)  # lost, until the next announcement
                    assert await notifier.catch_up_everyone()
                else:
                    await commit(pool, notifier, batch)
                if step % 20 == 0:
                    assert await notifier.catch_up_everyone()
                deepest = max(deepest, *(max(small.queue_depths(t), default=0) for t in topics))
                await asyncio.sleep(rng.uniform(0, 0.004))
            for topic, follower in followers:
                await eventually(lambda f=follower, t=topic: f.has(written[t]), f"incomplete (seed {seed})")
            await asyncio.sleep(0.2)
            for topic, follower in followers:
                assert follower.received == written[topic], f"seed {seed}"
    finally:
        await asyncio.wait_for(small.close(), WAIT)
    assert deepest <= 4


async def test_a_failed_read_ends_the_subscriptions_with_unavailable(
    broadcast: Broadcast, notifier: Notifier, settings: Settings
) -> None:
    pool = await create_pool(settings.database_url or "")
    failing = Hub(broadcast, pool, settings)
    try:
        topic = new_topic()
        await commit(pool, notifier, make_notices(topic, 2))
        streams = [failing.subscribe(topic, START) for _ in range(3)]
        await pool.close()  # every read from now on fails
        for stream in streams:
            with pytest.raises(UnavailableError):
                await take(stream, 1)
    finally:
        await asyncio.wait_for(failing.close(), WAIT)
