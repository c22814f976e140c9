"""CPU per write of each process of `bookworm serve` and of each kind of PostgreSQL backend, under load.

Usage:
    BOOKWORM_DATABASE_URL=... BOOKWORM_REDIS_URL=... python bench/write_cpu.py [--ops book,author]
        [--rounds 2] [--duration 6] [--books 300] [--profile DIR] [--foreign-hold MS]

compare.py sums the server's processes (the API process and the worker) and every backend of Bookworm's
database; this splits them. It starts `bookworm serve` (1 API process and its worker) on a scratch
database and Redis prefix, seeds --books books, makes an author, a category and a publisher, then per
round and operation sends 32 connections of `createBook` or `createAuthor` (compare.py's requests) for a
1 s warm-up and --duration s. Per good answer it prints the CPU of the API process, of the worker, and of
the database's backends by `application_name` (`bookworm-api`, `bookworm-worker`, the relay's own
connection, `bookworm-relay`), the Redis server's (shared: other users count too), the machine's
busy share, and each write's lag from its commit to every read model (bench/_lag.py). It also prints the
share of the round's wall time the API process and the worker spent on a core and waiting, runnable, for
one (/proc/PID/task/*/schedstat): a process at 100 % between the two is saturated. With --profile DIR,
py-spy (500 samples/s, raw format) records the API process and the worker during each measured window
into DIR/<op>-<round>-api.txt and -worker.txt; its sampling slows both, so the CPU figures of such a run
are not comparable with the others. With --foreign-hold MS, a transaction of another database (the
server's `postgres`) holds a transaction id for MS ms every second, as a migration or a test elsewhere on
the same server would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from _cpu import _machine, _processes, scheduled
from _graphql import CREATE, CREATE_BOOK, create_refs
from _lag import ReadModelClock
from _lean import Connection, Endpoint, Operation, Requests, closed_loop, numbered, string_field
from _scratch import database_of, scratch_database, scratch_prefix, with_database
from _server import TREE, bookworm_server, percentile

from app.eventstore.position import Position
from app.settings import Settings

CREATE_AUTHOR = CREATE % ("createAuthor", "CreateAuthorSuccess", "authorId position")
CONNECTIONS = 32
WARMUP = 1.0
MACHINE_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"


def _counters(api: int, worker: int, names: Mapping[int, str], database: str) -> dict[str, float]:
    """CPU seconds so far: the two processes, the database's backends by application name, Redis."""
    found: dict[str, float] = {"machine": _machine() or 0.0, "at": time.perf_counter()}
    for pid, process in _processes().items():
        if pid in (api, worker):
            key = "api" if pid == api else "worker"
        elif process.name == "postgres" and database in process.args.split():
            key = f"pg {names.get(pid, 'none')}"
        elif process.name.startswith(("redis-server", "valkey-server")):
            key = "redis"
        else:
            continue
        found[key] = found.get(key, 0.0) + process.cpu
    return found


async def _application_names(url: str, database: str) -> dict[int, str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1", database
        )
    finally:
        await connection.close()
    # A worker's backend names itself a projector's for the length of each projection batch.
    named = {"bookworm-projector": "bookworm-worker"}
    return {row["pid"]: named.get(row["application_name"], row["application_name"] or "none") for row in rows}


def _profilers(directory: str, label: str, pids: Mapping[str, int], seconds: float) -> list[Any]:
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    return [
        subprocess.Popen(
            [
                *(py_spy, "record", "-r", "500", "-f", "raw", "-o", f"{directory}/{label}-{name}.txt"),
                *("--pid", str(pid), "-d", str(max(1, round(seconds)))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


async def run(args: argparse.Namespace) -> None:
    base = os.environ.get("BOOKWORM_DATABASE_URL") or MACHINE_DATABASE
    redis_url = os.environ.get("BOOKWORM_REDIS_URL") or MACHINE_REDIS
    async with (
        scratch_database(base, "bench_write_cpu") as url,
        scratch_prefix(redis_url, "bench-write-cpu") as prefix,
    ):
        os.environ.update(
            BOOKWORM_DATABASE_URL=url,
            BOOKWORM_REDIS_URL=redis_url,
            BOOKWORM_REDIS_PREFIX=prefix,
            BOOKWORM_API_PROCESSES="1",
        )
        args.redis_url, args.events_stream = redis_url, Settings.from_env().events_stream
        os.environ.setdefault("BOOKWORM_CLIENT_REQUESTS_RUNNING", str(CONNECTIONS))
        with bookworm_server() as server:
            if args.books:
                server.run_cli("seed", "--books", str(args.books))
            auth = {"Authorization": f"Bearer {server.admin_token()}"}
            async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=auth) as http:
                refs = await create_refs(http)
            children = {pid: p for pid, p in _processes().items() if p.parent == server.pid}
            worker = next(pid for pid, p in children.items() if "worker" in p.args)
            api = next(pid for pid in children if pid != worker)
            print(f"{TREE}: API process {api}, worker {worker}", flush=True)
            endpoint = Endpoint.of(f"{server.url}/graphql")
            tag = os.urandom(3).hex()
            operations: dict[str, tuple[Requests, bytes]] = {
                "book": (
                    numbered(
                        endpoint, CREATE_BOOK, lambda s: {"input": refs.book_input(f"W {tag} {s}")}, auth
                    ),
                    b'"CreateBookSuccess"',
                ),
                "author": (
                    numbered(endpoint, CREATE_AUTHOR, lambda s: {"name": f"W {tag} {s}"}, auth),
                    b'"CreateAuthorSuccess"',
                ),
            }
            clock = await ReadModelClock.start(url)
            hold = args.foreign_hold
            holder = asyncio.create_task(_hold_elsewhere(base, hold)) if hold else None
            try:
                for number in range(args.rounds):
                    for name in args.ops:
                        requests, success = operations[name]
                        await _round(
                            args, f"{name}-{number}", requests, success, endpoint, clock, api, worker
                        )
                        await asyncio.sleep(1.0)
            finally:
                if holder is not None:
                    holder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await holder
                await clock.close()


async def _hold_elsewhere(base: str, milliseconds: float) -> None:
    """Every second, hold a transaction id for `milliseconds` in the server's `postgres` database.

    What another database's writer does to this one's commit-order readers: a migration, CREATE DATABASE,
    a test or a job idle in transaction (transaction ids are the server's).
    """
    connection = await asyncpg.connect(with_database(base, "postgres"))
    try:
        while True:
            async with connection.transaction():
                await connection.fetchval("SELECT pg_current_xact_id()")
                await asyncio.sleep(milliseconds / 1000)
            await asyncio.sleep(max(0.0, 1.0 - milliseconds / 1000))
    finally:
        await connection.close()


async def _round(
    args: argparse.Namespace,
    label: str,
    requests: Requests,
    success: bytes,
    endpoint: Endpoint,
    clock: ReadModelClock,
    api: int,
    worker: int,
) -> None:
    positions: list[tuple[str, float]] = []

    def seen(body: bytes, at: float) -> None:
        position = string_field(body, b"position")
        if position is not None:
            positions.append((position, at))

    operation = Operation(requests, success, seen)
    connections = [Connection(endpoint) for _ in range(CONNECTIONS)]
    try:
        await closed_loop(connections, operation, WARMUP)
        url = os.environ["BOOKWORM_DATABASE_URL"]
        database = database_of(url)
        names = await _application_names(url, database)
        pids = {"api": api, "worker": worker}
        spies = _profilers(args.profile, label, pids, args.duration) if args.profile else []
        before = _counters(api, worker, names, database)
        sched_before = {name: scheduled(pid) for name, pid in pids.items()}
        started, started_at = time.perf_counter(), time.time()
        outcome = await closed_loop(connections, operation, args.duration)
        after = _counters(api, worker, names, database)
        sched_after = {name: scheduled(pid) for name, pid in pids.items()}
        for spy in spies:
            spy.wait()
    finally:
        for connection in connections:
            connection.close()
    good = len(outcome.latencies)
    wall = after["at"] - before["at"]

    def per(key: str) -> float:
        return (after.get(key, 0.0) - before.get(key, 0.0)) / max(good, 1) * 1e6

    keys = sorted(k for k in after if k not in ("at", "machine", "redis"))
    measured = [p for p, at in positions if at >= started]
    relayed = await _relayed(args.redis_url, args.events_stream, started_at) if args.stages else {}
    stages = await clock.stages(measured, {"relay": lambda p: relayed.get(p)} if args.stages else {})
    lags = stages.pop("every read model")
    lag = _percentiles(lags)
    cpu = ", ".join(f"{key} {per(key):,.0f}" for key in keys)
    total = sum(per(k) for k in keys)
    busy = (after["machine"] - before["machine"]) / wall * 100
    print(
        f"{label}: {good / wall:,.0f}/s, {outcome.failed} failed; µs per write: total {total:,.0f} ({cpu}),"
        f" redis {per('redis'):,.0f}; machine {busy:.0f} % busy; lag p50 / p99 {lag} ms",
        flush=True,
    )
    shares = []
    for name in pids:
        first, last = sched_before[name], sched_after[name]
        if first is not None and last is not None:
            ran, waited = ((b - a) / wall * 100 for a, b in zip(first, last, strict=True))
            shares.append(f"{name} {ran:.0f} % on a core + {waited:.0f} % waiting for one")
    if shares:
        print(f"{label}: of the round's wall time, {'; '.join(shares)}", flush=True)
    if args.stages:
        each = ", ".join(f"{name} {_percentiles(stage)}" for name, stage in stages.items())
        print(f"{label}: lag p50 / p99 ms from the commit to each stage: {each}", flush=True)


def _percentiles(lags: Sequence[float]) -> str:
    return f"{percentile(lags, 0.5) * 1000:.0f} / {percentile(lags, 0.99) * 1000:.0f}" if lags else "-"


async def _relayed(redis_url: str, stream: str, since: float) -> dict[Position, float]:
    """The wall time at which the relay added each event since `since` to the stream (its entry id's ms)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(stream, min=f"{int(since * 1000)}-0")
    finally:
        await client.aclose()
    return {
        Position.parse(fields[b"position"].decode()): int(key.split(b"-")[0]) / 1000
        for key, fields in entries
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=lambda t: t.split(","), default=["book", "author"], help="book,author")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured per round")
    parser.add_argument("--books", type=int, default=300, help="books seeded first")
    parser.add_argument("--profile", default="", help="a directory for py-spy's raw profiles")
    parser.add_argument(
        "--stages", action="store_true", help="also each write's lag to the relay's XADD and each read model"
    )
    parser.add_argument(
        "--foreign-hold",
        type=float,
        default=0.0,
        help="ms: every second, hold a transaction id that long in the server's `postgres` database",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
