"""Lease renewal under stress: the longest gap between renewals while the process is busy otherwise.

Usage:
    python bench/lease_renewal.py [--ttl 3] [--leases 8] [--phase 9]

Needs PostgreSQL only: BOOKWORM_DATABASE_URL when set, else the embedded server in a throw-away data
directory; a new database is created, migrated and dropped. One LeaseKeeper renews --leases leases (a
worker holds eight) while this process, for --phase seconds each, is idle; runs one batch per lease that
holds the lease's fence the whole phase; keeps its event loop busy with Python code that never yields;
and holds every connection of a pool with slow queries. A monitor thread on a connection of its own
records every new `expires_at`; as renewal sets it to clock_timestamp() + ttl, the gaps are PostgreSQL's
own times. "lost" counts leases whose runner was told they are gone. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import asyncpg

from app.bus.keeper import LeaseKeeper
from app.bus.lease import Lease
from app.db import create_pool, migrate, plain_url

POLL = 0.02  # seconds between the monitor's reads


class Monitor:
    """Collects the server time of every renewal, from a thread with its own loop and connection."""

    def __init__(self, url: str, ttl: float) -> None:
        self._url = url
        self._ttl = ttl
        self.renewed: dict[str, list[float]] = {}  # lease -> epoch seconds of each renewal, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, end: float) -> tuple[int, float]:
        """Return the renewals in [start, end] and the longest gap between renewals of one lease there."""
        count, longest = 0, 0.0
        for times in self.renewed.values():
            inside = [t for t in times if start <= t <= end]
            count += len(inside)
            edges = [start, *inside, end]
            longest = max(longest, *(b - a for a, b in itertools.pairwise(edges)))
        return count, longest

    async def _run(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            sql = "SELECT name, extract(epoch FROM expires_at)::float8 - $1 FROM bus.leases"
            while not self._stop.is_set():
                for name, renewed_at in await conn.fetch(sql, self._ttl):
                    times = self.renewed.setdefault(name, [])
                    if not times or times[-1] != renewed_at:
                        times.append(renewed_at)
                await asyncio.sleep(POLL)
        finally:
            await conn.close()


async def idle(seconds: float, pool: asyncpg.Pool, leases: list[Lease]) -> None:
    await asyncio.sleep(seconds)


async def long_batches(seconds: float, pool: asyncpg.Pool, leases: list[Lease]) -> None:
    async def batch(lease: Lease) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await lease.fence(conn)
            await asyncio.sleep(seconds)

    await asyncio.gather(*(batch(lease) for lease in leases))


async def busy_loop(seconds: float, pool: asyncpg.Pool, leases: list[Lease]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1_000))


async def pool_exhausted(seconds: float, pool: asyncpg.Pool, leases: list[Lease]) -> None:
    await asyncio.gather(*(pool.execute("SELECT pg_sleep($1)", seconds) for _ in range(pool.get_max_size())))


Phase = Callable[[float, asyncpg.Pool, list[Lease]], Awaitable[None]]
PHASES: list[tuple[str, Phase]] = [
    ("idle", idle),
    ("one batch per lease holds its fence", long_batches),
    ("event loop busy (no await)", busy_loop),
    ("pool exhausted by slow queries", pool_exhausted),
]


async def measure(url: str, ttl: float, count: int, phase_seconds: float) -> None:
    pool = await create_pool(url, size=count + 2)
    keeper = LeaseKeeper(url, ttl)
    keeper.start()
    monitor = Monitor(url, ttl)
    monitor.start()
    leases = [Lease(pool, f"bench-{i}", ttl) for i in range(count)]
    for lease in leases:
        assert await lease.try_acquire()
    lost = [keeper.hold(lease) for lease in leases]
    await asyncio.sleep(ttl)  # every lease renewed at least once before measuring
    print(f"ttl {ttl:g} s (renewed every {ttl / 3:.2f} s), {count} leases, {phase_seconds:g} s per phase")
    header = f"{'phase':<40}{'renewals':>10}{'longest gap s':>15}{'lost':>6}"
    print(header)
    print("-" * len(header))
    try:
        for name, phase in PHASES:
            start = time.time()
            await phase(phase_seconds, pool, leases)
            await asyncio.sleep(POLL * 5)
            renewals, longest = monitor.window(start, time.time())
            gone = sum(event.is_set() for event in lost)
            print(f"{name:<40}{renewals:>10}{longest:>15.2f}{gone:>6}")
    finally:
        monitor.stop()
        await keeper.stop()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=float, default=3.0)
    parser.add_argument("--leases", type=int, default=8)
    parser.add_argument("--phase", type=float, default=9.0, help="seconds per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        server_url = os.environ.get("BOOKWORM_DATABASE_URL")
        servers = None
        if not server_url:
            from app import embedded

            servers = embedded.attach_or_start(Path(data_dir))
            server_url = servers.database_url
        try:
            asyncio.run(_in_new_database(plain_url(server_url), args.ttl, args.leases, args.phase))
        finally:
            if servers is not None:
                servers.stop()


async def _in_new_database(server_url: str, ttl: float, count: int, phase_seconds: float) -> None:
    name = f"bookworm_bench_lease_{uuid.uuid4().hex[:8]}"
    base, _, _ = server_url.rpartition("/")
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{base}/{name}"
        await asyncio.to_thread(migrate, url)
        await measure(url, ttl, count, phase_seconds)
    finally:
        with suppress(Exception):
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    main()
