"""What the workers cost PostgreSQL per event: transactions and statements, with every consumer running.

Usage:
    BOOKWORM_DATABASE_URL=... BOOKWORM_REDIS_URL=... python bench/worker_cost.py [--rate 400] [--seconds 5]
        [--event book|author] [--loop worker|asyncio]

In-process, on a scratch database and Redis prefix: the workers of `bookworm worker` (relay, the eight
consumer groups, scheduler) run while one task appends --rate events a second (BookCreated or
AuthorCreated, one per transaction, as the API's writes do) for --seconds. Then it waits until every
projection and process manager has stored a checkpoint at the head. Figures, per event appended:
PostgreSQL transactions of the database less the appends' and the polls' own (`pg_stat_database`), and
the round trips the workers' pool sent (every statement, BEGIN and COMMIT, and a release's reset),
counted on the connections named `bookworm-worker`; and each event's lag, from its commit until every read
model's checkpoint passed it (bench/_lag.py), with the appends a second end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import time
from decimal import Decimal
from typing import Any

import asyncpg
from _lag import ReadModelClock
from _scratch import database_of, scratch_database, scratch_prefix
from _server import percentile

from app import aio
from app.bootstrap import worker_process
from app.db import WORKER_APPLICATION, Session, create_pool, migrate
from app.events import catalog as ev
from app.events.base import Event, Metadata
from app.eventstore import EventStore, Position
from app.ids import new_id
from app.settings import Settings

SENT: collections.Counter[str] = collections.Counter()
STATS_DELAY = 11.0  # seconds until every backend has reported its transactions to pg_stat_database


def _count_worker_round_trips() -> None:
    """Count the round trips of the workers' connections (by name) in this process."""
    base = asyncpg.connection.Connection

    def counted(name: str, method: Any) -> Any:
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.get_settings().application_name == WORKER_APPLICATION:
                SENT[name] += 1
            return await method(self, *args, **kwargs)

        return call

    execute = base.execute

    async def plain_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args and self.get_settings().application_name == WORKER_APPLICATION:
            SENT["simple query"] += 1  # BEGIN, COMMIT, a reset; with arguments it goes through _execute
        return await execute(self, query, *args, **kwargs)

    base.execute = plain_execute
    base._execute = counted("statement", base._execute)
    base._executemany = counted("pipelined statements", base._executemany)


def _event(kind: str) -> tuple[str, str, Event]:
    if kind == "author":
        author_id = new_id()
        return author_id, "Author", ev.AuthorCreated(author_id=author_id, name="Cost")
    book_id = new_id()
    book = ev.BookCreated(
        book_id=book_id,
        name="Cost",
        description=None,
        price=Decimal("10.00"),
        price_sale=None,
        category_id=new_id(),
        publisher_id=new_id(),
        author_ids=(new_id(),),
    )
    return book_id, "Book", book


async def _append(
    pool: asyncpg.Pool, store: EventStore, kind: str, rate: float, seconds: float
) -> list[Position]:
    loop = asyncio.get_running_loop()
    started, sent, positions = loop.time(), 0, []
    while (elapsed := loop.time() - started) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            stream_id, stream_type, event = _event(kind)
            async with pool.acquire() as conn, conn.transaction():
                meta = Metadata(actor="bench", correlation_id=new_id())
                position = await store.append(
                    conn,
                    stream_id=stream_id,
                    stream_type=stream_type,
                    expected_version=0,
                    events=[event],
                    metadata=meta,
                )
            positions.append(position)
            sent += 1
        await asyncio.sleep(0.002)
    return positions


_CHECKPOINTS = """
SELECT transaction_id::text, global_position FROM read.projections
UNION ALL SELECT transaction_id::text, global_position FROM bus.checkpoints WHERE name <> 'relay'
"""
_COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"


async def _stored(pool: asyncpg.Pool, head: Position) -> int:
    """Poll until every projection and process manager has stored a checkpoint at `head`; count the polls."""
    polls = 0
    while True:
        polls += 1
        if all(Position(int(t), g) >= head for t, g in await pool.fetch(_CHECKPOINTS)):
            return polls
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace, url: str, settings: Settings) -> None:
    await asyncio.to_thread(migrate, url)
    # A release resets nothing, so each append is one transaction and each poll one more.
    pool = await create_pool(url, size=4, session=Session("bench", holds_session_state=False))
    store = EventStore(pool)
    database = database_of(url)
    clock = await ReadModelClock.start(url)
    try:
        async with worker_process(settings):
            # Every runner leads and has caught up with nothing; every backend has reported its figures
            # (an idle one does so within PGSTAT_IDLE_INTERVAL, 10 s).
            await asyncio.sleep(STATS_DELAY)
            SENT.clear()
            before = await pool.fetchval(_COMMITS, database)
            started, cpu = time.perf_counter(), time.process_time()
            positions = await _append(pool, store, args.event, args.rate, args.seconds)
            head = await store.head()
            polls = 1 + await _stored(pool, head)
            settled, cpu = time.perf_counter() - started, time.process_time() - cpu
            await asyncio.sleep(STATS_DELAY)
            after = await pool.fetchval(_COMMITS, database)
            lags = await clock.lags([str(p) for p in positions])  # after the figure: not counted in it
    finally:
        await clock.close()
        await pool.close()
    appended = len(positions)
    worker = after - before - appended - polls - 1  # the head's read, the polls, the last figure
    print(f"{appended} {args.event} events at {args.rate:g}/s, checkpoints all stored after {settled:.2f} s")
    print(f"appends a second end to end (every checkpoint stored): {appended / settled:.0f}")
    p50, p99, most = (ms * 1000 for ms in (statistics.median(lags), percentile(lags, 0.99), max(lags)))
    print(f"lag, commit to every read model: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {most:.0f} ms")
    print(f"PostgreSQL transactions of the workers per event: {worker / appended:.2f}")
    print(f"CPU of this process per event (the workers and the appender): {cpu / appended * 1e6:.0f} µs")
    total = sum(SENT.values())
    print(f"round trips of the workers' pool per event: {total / appended:.2f}", end=" (")
    print(", ".join(f"{name} {n / appended:.2f}" for name, n in SENT.most_common()) + ")")


async def main(args: argparse.Namespace) -> None:
    _count_worker_round_trips()
    server = os.environ["BOOKWORM_DATABASE_URL"]
    redis_url = os.environ["BOOKWORM_REDIS_URL"]
    async with (
        scratch_database(server, "bench_worker_cost") as url,
        scratch_prefix(redis_url, "worker-cost") as prefix,
    ):
        env = {**os.environ, "BOOKWORM_DATABASE_URL": url, "BOOKWORM_REDIS_PREFIX": prefix}
        await measure(args, url, Settings.from_env(env))


if __name__ == "__main__":
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rate", type=float, default=400.0, help="events appended a second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--event", choices=("book", "author"), default="book")
    parser.add_argument(
        "--loop",
        choices=("worker", "asyncio"),
        default="worker",
        help="worker: the loop `bookworm worker` runs on (uvloop where installed); asyncio: asyncio's own",
    )
    parsed = parser.parse_args()
    (asyncio.run if parsed.loop == "asyncio" else aio.run)(main(parsed))
