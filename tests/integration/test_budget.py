"""Budgets against real Redis: shared token buckets, the write bucket, expiry, and the local stand-in."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ConnectionError, ResponseError

from app.admission.budget import CHARGE_TIMEOUT, RETRY_FIRST, Budgets
from app.bus.infra import REDIS_DOWN
from app.redis_line import MAX_WAITING, RedisLine
from app.settings import Settings
from tests.integration.test_live import private_server, unused_redis_url

SLOW = 0.001  # a refill so slow that nothing comes back during a test


def new_key() -> str:
    return f"ip:test-{uuid.uuid4().hex}"


def limits(settings: Settings, **changes: float) -> Settings:
    defaults = {
        "budget_capacity": 10,
        "budget_refill": SLOW,
        "write_budget_capacity": 2,
        "write_budget_refill": SLOW,
    }
    return replace(settings, **{**defaults, **changes})  # type: ignore[arg-type]


MakeBudgets = Callable[[aioredis.Redis, Settings], Budgets]


@pytest.fixture
async def make_budgets() -> AsyncIterator[MakeBudgets]:
    """Budgets as bootstrap makes them, each closed (its line to Redis) when the test ends."""
    made: list[Budgets] = []

    def make(client: aioredis.Redis, settings: Settings) -> Budgets:
        made.append(Budgets(client, settings))
        return made[-1]

    yield make
    for budgets in made:
        await budgets.aclose()


@pytest.fixture
async def raw_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client that answers bytes, as the one bootstrap builds."""
    client = aioredis.Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


async def test_a_bucket_allows_up_to_its_capacity_then_refuses(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings, budget_refill=2.0)), new_key()

    first, second = await budgets.charge(key, 4), await budgets.charge(key, 4)
    refused = await budgets.charge(key, 4)

    assert first.allowed and second.allowed
    assert first.remaining == pytest.approx(6, abs=0.1) and second.remaining == pytest.approx(2, abs=0.1)
    assert not refused.allowed and refused.bucket == "cost"
    assert 0.5 < refused.retry_after <= 1.0  # 2 points missing at 2 per second
    assert refused.remaining == pytest.approx(2, abs=0.1)
    assert refused.extensions() == {
        "requestedQueryCost": 4,
        "throttleStatus": {"maximumAvailable": 10, "currentlyAvailable": 2, "restoreRate": 2.0},
    }


async def test_a_bucket_refills_over_time(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings, budget_refill=20.0)), new_key()
    assert (await budgets.charge(key, 10)).allowed
    assert not (await budgets.charge(key, 5)).allowed

    await asyncio.sleep(0.3)  # 6 points back

    assert (await budgets.charge(key, 5)).allowed


async def test_the_write_bucket_refuses_on_its_own_and_takes_nothing_from_the_cost_bucket(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings)), new_key()
    assert (await budgets.charge(key, 1, writes=1)).allowed
    assert (await budgets.charge(key, 1, writes=1)).allowed

    refused = await budgets.charge(key, 1, writes=1)

    assert not refused.allowed and refused.bucket == "writes"
    assert refused.retry_after == pytest.approx(1 / SLOW, rel=0.01)
    assert refused.remaining == pytest.approx(8, abs=0.01)
    assert refused.extensions()["writeThrottleStatus"] == {
        "maximumAvailable": 2,
        "currentlyAvailable": 0,
        "restoreRate": SLOW,
    }
    assert (await budgets.charge(key, 0)).remaining == pytest.approx(8, abs=0.01)
    assert (await budgets.charge(key, 8)).allowed  # reads go on while writes are spent


async def test_a_refused_cost_takes_no_write(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings)), new_key()

    refused = await budgets.charge(key, 11, writes=1)

    assert not refused.allowed and refused.bucket == "cost"
    assert refused.writes_remaining == pytest.approx(2)
    assert (await budgets.charge(key, 1, writes=2)).allowed


async def test_a_charge_above_capacity_is_refused_with_a_finite_wait(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings, budget_refill=5.0)), new_key()

    refused = await budgets.charge(key, 1_000_000)

    assert not refused.allowed and refused.retry_after == pytest.approx(2.0)  # a full refill
    assert (await budgets.charge(key, 10)).allowed


async def test_two_processes_share_one_bucket_and_clients_do_not(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis, raw_redis: aioredis.Redis
) -> None:
    one, other = make_budgets(redis, limits(settings)), make_budgets(raw_redis, limits(settings))
    key, someone_else = new_key(), new_key()

    assert (await one.charge(key, 6)).allowed
    refused = await other.charge(key, 6, writes=1)
    allowed = await other.charge(someone_else, 6, writes=1)

    assert not refused.allowed and refused.remaining == pytest.approx(4, abs=0.01)
    assert allowed.allowed and allowed.remaining == pytest.approx(4, abs=0.01)
    assert allowed.writes_remaining == pytest.approx(1, abs=0.01)


async def test_a_bucket_expires_once_it_would_be_full(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    limited = limits(settings, budget_refill=10.0, write_budget_refill=1.0)
    budgets, key = make_budgets(redis, limited), new_key()
    cost_key = f"{settings.redis_prefix}:budget:cost:{key}"
    writes_key = f"{settings.redis_prefix}:budget:writes:{key}"

    await budgets.charge(key, 3, writes=1)

    assert 0 < await redis.pttl(cost_key) <= 301
    assert 0 < await redis.pttl(writes_key) <= 1001
    await asyncio.sleep(0.4)
    assert not await redis.exists(cost_key)
    assert (await budgets.charge(key, 10)).allowed


async def test_a_refused_or_empty_charge_writes_nothing(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings)), new_key()

    await budgets.charge(key, 11)
    await budgets.charge(key, 0)

    assert not await redis.keys(f"{settings.redis_prefix}:budget:*:{key}")


async def test_without_redis_each_process_charges_its_own_buckets(
    make_budgets: MakeBudgets, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    closed = aioredis.Redis.from_url(unused_redis_url(), socket_timeout=5, socket_connect_timeout=5)
    budgets, key = make_budgets(closed, limits(settings)), new_key()
    try:
        with caplog.at_level(logging.WARNING, logger="app.admission.budget"):
            started = time.monotonic()
            outcomes = [await budgets.charge(key, 1) for _ in range(12)]
            elapsed = time.monotonic() - started
    finally:
        await closed.aclose()

    assert [c.allowed for c in outcomes] == [True] * 10 + [False] * 2
    assert outcomes[-1].bucket == "cost" and outcomes[-1].retry_after > 0
    assert elapsed < 2.0  # one failed connection, then no more tries
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


async def test_a_frozen_redis_costs_a_short_timeout_not_the_client_timeout(
    make_budgets: MakeBudgets, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_server(tmp_path)
    await asyncio.to_thread(server.start)
    url = f"unix://{tmp_path}/valkey.sock"
    frozen = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    admin = aioredis.Redis.from_url(url)
    budgets, key = make_budgets(frozen, limits(settings)), new_key()
    try:
        await frozen.ping()
        await admin.client_pause(3000, all=True)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="app.admission.budget"):
            together = await asyncio.gather(*(budgets.charge(key, 0) for _ in range(20)))
            first = await budgets.charge(key, 4)
            second = await budgets.charge(key, 4)
        elapsed = time.monotonic() - started
    finally:
        await admin.client_unpause()
        for client in (frozen, admin):
            await client.aclose()
        await asyncio.to_thread(server.stop)

    assert all(c.allowed and c.remaining == 10 for c in together)
    assert first.allowed and second.allowed and second.remaining == pytest.approx(2)
    assert elapsed < CHARGE_TIMEOUT + 1.5
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


async def test_charges_go_back_to_redis_when_it_returns(
    make_budgets: MakeBudgets, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = private_server(tmp_path), private_server(tmp_path)
    await asyncio.to_thread(first.start)
    client = aioredis.Redis.from_url(f"unix://{tmp_path}/valkey.sock")
    budgets, key = make_budgets(client, limits(settings)), new_key()
    try:
        assert (await budgets.charge(key, 3)).remaining == pytest.approx(7, abs=0.01)
        await asyncio.to_thread(first.stop)
        assert (await budgets.charge(key, 1)).remaining == pytest.approx(9)  # a fresh local bucket
        await asyncio.to_thread(second.start)  # empty: the shared bucket is full again
        await asyncio.sleep(RETRY_FIRST + 0.1)
        with caplog.at_level(logging.INFO, logger="app.admission.budget"):
            back = await budgets.charge(key, 5)
        shared = await client.pttl(f"{settings.redis_prefix}:budget:cost:{key}")
    finally:
        await client.aclose()
        for server in (first, second):
            if server.is_running():
                await asyncio.to_thread(server.stop)

    assert back.allowed and back.remaining == pytest.approx(5, abs=0.01)
    assert shared > 0
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()] != []


async def test_charges_made_together_are_charged_exactly_and_in_order(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key, other = make_budgets(redis, limits(settings)), new_key(), new_key()

    together = await asyncio.gather(
        *(budgets.charge(key, 1, writes=i % 2) for i in range(12)), budgets.charge(other, 10)
    )

    mine, theirs = together[:-1], together[-1]
    # Two writes fit; every later charge with a write is refused and takes nothing.
    assert [c.allowed for c in mine] == [True] * 5 + [False, True] * 3 + [False]
    assert {c.bucket for c in mine if not c.allowed} == {"writes"}
    assert [round(c.remaining) for c in mine if c.allowed] == [9, 8, 7, 6, 5, 4, 3, 2]
    assert theirs.allowed and theirs.remaining == pytest.approx(0, abs=0.01)


async def test_charges_go_through_a_line_of_their_own_and_redis_py_where_it_cannot(
    make_budgets: MakeBudgets, settings: Settings
) -> None:
    url = settings.redis_url or ""
    resp3 = aioredis.Redis.from_url(url, protocol=3)
    try:
        assert RedisLine.of(resp3) is None  # charged through redis-py, as a TLS client would be
        via_client, via_line = make_budgets(resp3, limits(settings)), make_budgets(resp3, limits(settings))
        via_line._line = RedisLine.of(aioredis.Redis.from_url(url))
        assert via_line._line is not None
        key = new_key()
        charges = [await budgets.charge(key, 3) for budgets in (via_client, via_line, via_client)]
    finally:
        await resp3.aclose()
    assert [round(charge.remaining) for charge in charges] == [7, 4, 1]  # one shared bucket


async def test_charges_survive_a_script_flush(
    make_budgets: MakeBudgets, settings: Settings, redis: aioredis.Redis
) -> None:
    budgets, key = make_budgets(redis, limits(settings)), new_key()
    assert (await budgets.charge(key, 2)).remaining == pytest.approx(8, abs=0.01)
    await redis.script_flush()
    assert (await budgets.charge(key, 2)).remaining == pytest.approx(6, abs=0.01)  # EVAL, then EVALSHA
    assert (await budgets.charge(key, 2)).remaining == pytest.approx(4, abs=0.01)


async def test_the_line_selects_the_clients_database_and_drops_replies_nobody_waits_for(
    settings: Settings, tmp_path: Path
) -> None:
    server = private_server(tmp_path)
    await asyncio.to_thread(server.start)
    url = f"unix://{tmp_path}/valkey.sock"
    admin, other_db = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url, db=3)
    line = RedisLine.of(other_db)
    assert line is not None
    try:
        assert await line.call("SET", "k", "first") == b"OK"
        assert await other_db.get("k") == b"first" and await admin.get("k") is None
        await admin.client_pause(400, all=True)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await line.call("SET", "k", "second")  # answered once the pause ends, to nobody
        assert await line.call("GET", "k") == b"second"  # its own reply, not the SET's
        with pytest.raises(ResponseError, match="unknown command"):
            await line.call("NO-SUCH-COMMAND")
        assert await line.call("INCRBYFLOAT", "f", 0.000001) == b"0.000001"  # sent as repr: 1e-06
        await asyncio.to_thread(server.stop)
        with pytest.raises(REDIS_DOWN):
            await line.call("GET", "k")
        await asyncio.to_thread(server.start)
        assert await line.call("PING") == b"PONG"  # a new connection
    finally:
        await line.aclose()
        for client in (admin, other_db):
            await client.aclose()
        if server.is_running():
            await asyncio.to_thread(server.stop)


async def test_a_lines_commands_go_out_together_and_a_failure_is_raised_once_every_reply_is_in(
    settings: Settings, tmp_path: Path
) -> None:
    server = private_server(tmp_path)
    await asyncio.to_thread(server.start)
    client = aioredis.Redis.from_url(f"unix://{tmp_path}/valkey.sock")
    line = RedisLine.of(client)
    assert line is not None
    try:
        assert await line.call_many(("SET", "k", "v"), ("INCR", "n"), ("GET", "k")) == [b"OK", 1, b"v"]
        with pytest.raises(ResponseError, match="unknown command"):
            await line.call_many(("SET", "k", "w"), ("NO-SUCH-COMMAND",), ("INCR", "n"))
        # Both commands around the failing one ran, and no reply of theirs is left for the next caller.
        assert await line.call_many(("GET", "k"), ("GET", "n")) == [b"w", b"2"]
        await client.client_pause(400, all=True)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await line.call_many(("INCR", "n"), ("INCR", "n"))  # answered after the pause, to nobody
        assert await line.call("GET", "n") == b"4"
        # One call may send more than MAX_WAITING commands (a relay batch): only those left unanswered count.
        many = await line.call_many(*[("INCR", "n")] * (MAX_WAITING + 44))
        assert many[0] == 5 and many[-1] == MAX_WAITING + 48
    finally:
        await line.aclose()
        await client.aclose()
        await asyncio.to_thread(server.stop)


def test_the_line_runs_on_uvloop_as_the_servers_do(settings: Settings) -> None:
    # The API processes run uvloop, whose transports are not asyncio's classes; the other tests run asyncio.
    async def charged() -> list[bool]:
        client = aioredis.Redis.from_url(settings.redis_url or "")
        budgets = Budgets(client, limits(settings))
        try:
            key = new_key()
            charges = [await budgets.charge(key, 4) for _ in range(3)]
            line = budgets._line
            assert line is not None and await line.call("PING") == b"PONG"
            return [charge.allowed for charge in charges]
        finally:
            await budgets.aclose()
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(charged()) == [True, True, False]  # the shared bucket of 10 points: through Redis


async def test_a_line_redis_leaves_unanswered_is_closed_at_its_bound(tmp_path: Path) -> None:
    server = private_server(tmp_path)
    await asyncio.to_thread(server.start)
    url = f"unix://{tmp_path}/valkey.sock"
    admin = aioredis.Redis.from_url(url)
    line = RedisLine.of(admin)
    assert line is not None
    try:
        assert await line.call("PING") == b"PONG"
        await admin.client_pause(2000, all=True)
        waiting = [asyncio.create_task(line.call("PING")) for _ in range(MAX_WAITING)]
        await asyncio.sleep(0.05)  # all of them written
        with pytest.raises(ConnectionError, match="unanswered"):
            await line.call("PING")
        failed = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(outcome, ConnectionError) for outcome in failed)  # none left waiting
        await admin.client_unpause()
        assert await line.call("PING") == b"PONG"  # a new connection
    finally:
        await line.aclose()
        await admin.aclose()
        await asyncio.to_thread(server.stop)
