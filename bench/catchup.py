"""What one catch-up announcement costs an API process's hub with 100, 1,000 and 10,000 subscribers.

Usage:
    python bench/catchup.py [--subscribers 100,1000,10000] [--topics one,each] [--missed 0,1] [--repeat 3]

In-process, against BOOKWORM_DATABASE_URL / BOOKWORM_REDIS_URL when both are set, else embedded servers
in a throw-away data directory; a scratch database is created, migrated and dropped. It builds the live
path of one API process (RedisPubSubBackend, broadcaster, Hub, Notifier) on a pool of BOOKWORM_DB_POOL_SIZE
(default 10) and opens N hub subscriptions, each followed by a task that takes its notices, as a
websocket's resolver does. Topics: `one` puts every subscriber on one topic (catalogChanged), `each`
gives each its own (bookChanged of N books). Every topic has some history in read.changes.

One catch-up is what a consumer that starts leading sends: Notifier.catch_up_everyone(). With
`--missed 1` a row per topic was committed without its notice first (a worker killed between commit
and publish), so every subscriber must receive it; the measure ends when the last one has. With
`--missed 0` nothing was lost, and the measure ends when no query has been issued for QUIET seconds.

Columns: process CPU seconds (this process: hub, asyncpg, redis-py), of which the garbage collector's,
PostgreSQL CPU seconds (the backends of the scratch database; embedded: every child process), each
less what it uses meanwhile when idle (the probe's queries, measured just before), the
queries the pool issued, wall time until the last delivery (or the last query), and the slowest
`SELECT 1` of a probe that runs through the same pool every PROBE_EVERY seconds: what another client
waited meanwhile. Each figure is the median of --repeat catch-ups.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from _cpu import CpuProbe, CpuTimes
from _scratch import scratch_database
from broadcaster import Broadcast

from app.db import PooledConnection, migrate
from app.eventstore.position import Position
from app.live.backend import RedisPubSubBackend
from app.live.hub import Hub
from app.live.notices import CATALOG_TOPIC, ChangeNotice, book_topic
from app.live.notifier import Notifier
from app.projections.base import record_changes
from app.settings import Settings

HISTORY = 2_000  # rows already in read.changes: spread over the topics, at least one each
PROBE = "SELECT 1"
PROBE_EVERY = 0.01
QUIET = 2.0  # seconds without a query that end a `--missed 0` measure (a busy loop delays the first)
SETTLE = 0.5  # seconds between measures
LIVE_TIMEOUT = 300.0


@dataclass
class Counters:
    """Queries the pool issued (the probe's and the resets on release apart) and when the last one ended."""

    queries: int = 0
    last_query_at: float = 0.0
    slowest_probe: float = 0.0

    def logged(self, record: Any) -> None:
        # Not the probe's, nor the reset each checkout's release runs (asyncpg's, ends in RESET ALL).
        if record.query != PROBE and "RESET ALL" not in record.query:
            self.queries += 1
            self.last_query_at = time.perf_counter()


@dataclass(frozen=True)
class Result:
    topics: str
    subscribers: int
    missed: int
    cpu: float
    gc: float
    db_cpu: float | None
    queries: int
    wall_ms: float
    probe_ms: float


class GcClock:
    """CPU seconds this process spent collecting garbage (its cost grows with the live objects)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.total += time.process_time() - self._started


class Positions:
    """Positions after everything written so far, in commit order."""

    def __init__(self) -> None:
        self._next = 1

    def take(self) -> Position:
        self._next += 1
        return Position(1, self._next)


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, Redis URL): the configured servers, else embedded ones in a temporary directory."""
    database, redis = os.environ.get("BOOKWORM_DATABASE_URL"), os.environ.get("BOOKWORM_REDIS_URL")
    if database and redis:
        yield database, redis
        return
    from app import embedded

    with tempfile.TemporaryDirectory(prefix="bookworm-bench-") as directory:
        started = embedded.attach_or_start(Path(directory))
        try:
            yield started.database_url, started.redis_url
        finally:
            started.stop()


async def record(pool: asyncpg.Pool, notices: Sequence[ChangeNotice]) -> None:
    """Write read.changes rows, as a projection's transaction does."""
    async with pool.acquire() as conn:
        await record_changes(conn, notices)


def changes(topics: Sequence[str], positions: Positions) -> list[ChangeNotice]:
    """One change per topic, each at its own position."""
    return [
        ChangeNotice(
            position=positions.take(), topic=t, kind="UPDATED", entity="Book", entity_id=str(uuid.uuid4())
        )
        for t in topics
    ]


async def follow(stream: AsyncIterator[ChangeNotice], counting: list[Counting]) -> None:
    """Take every notice, as a subscription resolver does; count those counting[0] waits for."""
    async for notice in stream:
        counting[0].received(notice)


async def probe(pool: asyncpg.Pool, counters: Counters) -> None:
    """Run PROBE through the pool, again and again; keep the slowest."""
    while True:
        started = time.perf_counter()
        await pool.fetchval(PROBE)
        counters.slowest_probe = max(counters.slowest_probe, time.perf_counter() - started)
        await asyncio.sleep(PROBE_EVERY)


async def until_quiet(counters: Counters, since: float) -> None:
    """Return once no query has ended for QUIET seconds, counting from `since` at the earliest."""
    while True:
        left = max(counters.last_query_at, since) + QUIET - time.perf_counter()
        if left <= 0:
            return
        await asyncio.sleep(left)


async def idle_rates(cpu: CpuProbe) -> tuple[float, float]:
    """CPU seconds per second of this process and of the database while nothing happens but the probe."""
    before = cpu.read()
    await asyncio.sleep(QUIET)
    after = cpu.read()
    wall = after.at - before.at
    return (after.client - before.client) / wall, (database_cpu(before, after) or 0.0) / wall


class Bench:
    """One API process's live path on a scratch database."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, counters: Counters, cpu: CpuProbe) -> None:
        self.pool, self.settings, self.counters, self.cpu = pool, settings, counters, cpu
        self.positions = Positions()
        self.gc = GcClock()

    async def run(self, topics_kind: str, subscribers: int, missed: int, repeat: int) -> Result:
        topics = (
            [CATALOG_TOPIC]
            if topics_kind == "one"
            else [book_topic(str(uuid.uuid4())) for _ in range(subscribers)]
        )
        backend = RedisPubSubBackend(self.settings.redis_url or "")
        broadcast = Broadcast(backend=backend)
        await broadcast.connect()
        hub = Hub(broadcast, self.pool, self.settings)
        notifier = Notifier(backend, self.settings)
        counting = [Counting(set(), 0)]
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.history(topics)
            for number in range(subscribers):
                stream = hub.subscribe(topics[number % len(topics)])
                tasks.append(asyncio.create_task(follow(stream, counting)))
            await self.until_live(topics, subscribers, notifier, counting)
            results = [
                await self.once(topics, subscribers, missed, notifier, counting) for _ in range(repeat)
            ]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hub.close()
            await notifier.close()
            await broadcast.disconnect()
        return Result(
            topics=topics_kind,
            subscribers=subscribers,
            missed=missed,
            cpu=statistics.median(r.cpu for r in results),
            gc=statistics.median(r.gc for r in results),
            db_cpu=None if results[0].db_cpu is None else statistics.median(r.db_cpu or 0 for r in results),
            queries=round(statistics.median(r.queries for r in results)),
            wall_ms=statistics.median(r.wall_ms for r in results),
            probe_ms=statistics.median(r.probe_ms for r in results),
        )

    async def history(self, topics: Sequence[str]) -> None:
        rows = [topics[i % len(topics)] for i in range(max(HISTORY, len(topics)))]
        for start in range(0, len(rows), 5_000):
            await record(self.pool, changes(rows[start : start + 5_000], self.positions))

    async def until_live(
        self, topics: Sequence[str], subscribers: int, notifier: Notifier, counting: list[Counting]
    ) -> None:
        """Publish a change per topic until every subscriber has received one: all are live then."""
        deadline = time.perf_counter() + LIVE_TIMEOUT
        while True:
            published = changes(topics, self.positions)
            counting[0] = Counting({n.entity_id for n in published}, subscribers)
            await record(self.pool, published)
            await notifier.publish(published)
            try:
                await asyncio.wait_for(counting[0].done.wait(), 5.0)
                break
            except TimeoutError:
                if time.perf_counter() > deadline:
                    live = subscribers - counting[0].remaining
                    raise SystemExit(f"only {live} of {subscribers} went live") from None
        await asyncio.sleep(SETTLE)

    async def once(
        self,
        topics: Sequence[str],
        subscribers: int,
        missed: int,
        notifier: Notifier,
        counting: list[Counting],
    ) -> Result:
        lost = changes(topics, self.positions) if missed else []
        await record(self.pool, lost)  # committed, never announced
        counting[0] = Counting({n.entity_id for n in lost}, subscribers)
        idle, idle_db = await idle_rates(self.cpu)
        self.counters.slowest_probe = 0.0
        queries = self.counters.queries
        collecting = self.gc.total
        before = self.cpu.read()
        if not await notifier.catch_up_everyone():
            raise SystemExit("could not publish the catch-up announcement")
        if missed:
            await asyncio.wait_for(counting[0].done.wait(), LIVE_TIMEOUT)
            ended = counting[0].last_at
        await until_quiet(self.counters, before.at)
        if not missed:
            ended = self.counters.last_query_at
        after = self.cpu.read()
        collected = self.gc.total - collecting
        await asyncio.sleep(SETTLE)
        return Result(
            topics="",
            subscribers=subscribers,
            missed=missed,
            cpu=max(0.0, after.client - before.client - idle * (after.at - before.at)),
            gc=collected,
            db_cpu=without_idle(database_cpu(before, after), idle_db * (after.at - before.at)),
            queries=self.counters.queries - queries,
            wall_ms=max(0.0, ended - before.at) * 1000,
            probe_ms=self.counters.slowest_probe * 1000,
        )


class Counting:
    """Count subscribers receiving any of some entity ids; note when the last expected one arrives."""

    def __init__(self, entity_ids: set[str], subscribers: int) -> None:
        self.entity_ids = entity_ids
        self.remaining = subscribers if entity_ids else 0
        self.done = asyncio.Event()
        self.last_at = 0.0
        if not entity_ids:
            self.done.set()

    def received(self, notice: ChangeNotice) -> None:
        if notice.entity_id in self.entity_ids:
            self.remaining -= 1
            if self.remaining == 0:
                self.last_at = time.perf_counter()
                self.done.set()


def without_idle(cpu: float | None, idle: float) -> float | None:
    return None if cpu is None else max(0.0, cpu - idle)


def database_cpu(before: CpuTimes, after: CpuTimes) -> float | None:
    if not after.database:
        return None
    return sum(cpu - before.database.get(pid, 0.0) for pid, cpu in after.database.items())


def print_table(results: list[Result]) -> None:
    header = (
        f"{'topics':<7}{'subscribers':>12}{'missed':>8}{'CPU s':>9}{'of it GC':>10}{'PG CPU s':>10}"
        f"{'PG queries':>12}{'wall ms':>10}{'probe max ms':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        db = "-" if r.db_cpu is None else f"{r.db_cpu:.3f}"
        print(
            f"{r.topics:<7}{r.subscribers:>12}{r.missed:>8}{r.cpu:>9.3f}{r.gc:>10.3f}{db:>10}"
            f"{r.queries:>12}{r.wall_ms:>10.1f}{r.probe_ms:>14.1f}"
        )


async def main_async(args: argparse.Namespace, database_url: str, redis_url: str) -> list[Result]:
    settings = replace(
        Settings.from_env(),
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"bench-catchup-{uuid.uuid4().hex[:8]}",
    )
    counters = Counters()
    results: list[Result] = []
    async with AsyncExitStack() as stack:
        scratch = await stack.enter_async_context(scratch_database(database_url, "bench_catchup"))
        await asyncio.to_thread(migrate, scratch)
        settings = replace(settings, database_url=scratch)
        pool = await asyncpg.create_pool(
            scratch,
            min_size=settings.db_pool_size,
            max_size=settings.db_pool_size,
            connection_class=PooledConnection,
            init=lambda conn: _log_queries(conn, counters),
        )
        stack.push_async_callback(pool.close)
        database = None if os.environ.get("BOOKWORM_DATABASE_URL") is None else urlsplit(scratch).path[1:]
        cpu = CpuProbe(os.getpid(), database)
        probing = asyncio.create_task(probe(pool, counters))
        try:
            bench = Bench(pool, settings, counters, cpu)
            for topics in args.topics:
                for missed in args.missed:
                    for subscribers in args.subscribers:
                        result = await bench.run(topics, subscribers, missed, args.repeat)
                        results.append(result)
                        print_table([result])
                        sys.stdout.flush()
        finally:
            probing.cancel()
    return results


async def _log_queries(conn: asyncpg.Connection, counters: Counters) -> None:
    conn.add_query_logger(counters.logged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="100,1000,10000")
    parser.add_argument("--topics", default="one,each", help="one: a topic for all; each: a topic each")
    parser.add_argument("--missed", default="0,1", help="rows committed without a notice, per topic")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.subscribers = [int(n) for n in args.subscribers.split(",")]
    args.topics = args.topics.split(",")
    args.missed = [int(n) for n in args.missed.split(",")]
    with servers() as (database_url, redis_url):
        results = asyncio.run(main_async(args, database_url, redis_url))
    print()
    print_table(results)


if __name__ == "__main__":
    main()
