"""Scenario 4: two API processes and two workers; changes cross APIs, and a killed worker's leases move.

The load goes through API 1 only and the subscriber listens on API 2 only, so every change it sees
crossed processes through the worker's notices. Worker 1 starts alone and takes every lease; worker 2
then stands by. SIGKILLing the lease holder leaves its leases to expire (BOOKWORM_LEASE_TTL=3 in the
harness): the time to recover runs from the kill until worker 2 holds every lease and every projection
has applied an event committed after the kill.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import asyncpg

from app.db import create_pool
from app.eventstore import EventStore, Position
from tests.faults.cluster import Cluster, Proc, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import (
    Load,
    Watcher,
    check_watched,
    make_refs,
)

HANDOVER_LIMIT = 60.0  # seconds; generous for a loaded CI machine (the lease TTL is 3 s)

_LEASES = "SELECT name, owner FROM bus.leases WHERE expires_at > clock_timestamp()"
_POSITIONS = "SELECT transaction_id, global_position FROM read.projections"


async def test_changes_cross_api_processes_and_leases_move_to_the_standby_worker(
    cluster: Cluster, profile: Profile
) -> None:
    first = cluster.worker("worker-1")
    api_1, api_2 = cluster.api("api-1"), cluster.api("api-2")
    consumers = await consumer_names(cluster)
    await wait_for_holder(cluster, consumers, [first])  # started alone, so it takes every lease
    workers = [first, cluster.worker("worker-2")]
    token = admin_token()
    refs = await make_refs(api_1.url, token)
    watcher = Watcher([api_2.ws_url], after=refs.position)
    watching = asyncio.create_task(watcher.run())
    load = Load([api_1.url], token, refs, profile.rate, profile.clients)
    loading = asyncio.create_task(load.run(profile.seconds))

    await asyncio.sleep(profile.seconds / 3)  # when to strike, not a wait for correctness
    active = await wait_for_holder(cluster, consumers, workers)
    standby = next(worker for worker in workers if worker is not active)
    loop = asyncio.get_running_loop()
    head = await event_store_head(cluster)
    killed_at = loop.time()
    active.kill()
    assert await wait_for_holder(cluster, consumers, [standby]) is standby
    handed_over = loop.time() - killed_at
    await wait_for_progress(cluster, head)
    recovered = loop.time() - killed_at
    await loading
    caught_up = await cluster.caught_up()
    verified = await cluster.verify()

    expected = await check_watched(cluster.settings.database_url or "", watcher, refs.position)
    watching.cancel()
    assert watcher.reconnects == 0
    assert load.failures() == {}, load.outcomes
    assert load.succeeded == int(profile.rate * profile.seconds)
    written = await cluster.count("SELECT count(*) FROM eventstore.events")
    record(
        "4 two APIs, two workers",
        mutations=f"{load.summary()}, through API 1",
        changes_received_on_api_2=f"{len(watcher.received)} of {len(expected)}",
        leases=len(consumers),
        events_written=written,
        events_verified=verified,
        leases_handed_over_after=f"{handed_over:.2f} s",
        time_to_recover=f"{recovered:.2f} s",
        caught_up_after_load=f"{caught_up:.2f} s",
    )


async def consumer_names(cluster: Cluster) -> set[str]:
    """Every consumer group of this version, each a lease: the rows of `bookworm projections status`."""
    run = await cluster.cli("projections", "status")
    assert run.status == 0, run.stderr
    rows = [line.split()[0] for line in run.stdout.splitlines()[1:] if line and line[0] != " "]
    names = {name for name in rows if name not in ("relay", "Event")}
    assert names, run.stdout
    return names


async def wait_for_holder(cluster: Cluster, consumers: set[str], candidates: Sequence[Proc]) -> Proc:
    """Wait until one of `candidates` holds every consumer lease, unexpired; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANDOVER_LIMIT
    while True:
        owners = await lease_owners(cluster)
        pids = {owner_pid(owners.get(name, "")) for name in consumers}
        holder = [proc for proc in candidates if pids == {proc.process.pid}]
        if holder:
            return holder[0]
        assert loop.time() < deadline, f"no single worker holds every lease: {owners}"
        await asyncio.sleep(0.05)


async def lease_owners(cluster: Cluster) -> dict[str, str]:
    conn = await asyncpg.connect(cluster.settings.database_url)
    try:
        return {row["name"]: row["owner"] for row in await conn.fetch(_LEASES)}
    finally:
        await conn.close()


def owner_pid(owner: str) -> int | None:
    """The process id in a lease owner id (host:pid:random, app/bus/lease.py)."""
    match = re.fullmatch(r".*:(\d+):[0-9a-f]+", owner)
    return int(match.group(1)) if match else None


async def wait_for_progress(cluster: Cluster, past: Position) -> None:
    """Wait until every projection has applied an event after `past`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANDOVER_LIMIT
    conn = await asyncpg.connect(cluster.settings.database_url)
    try:
        while min(Position(*row) for row in await conn.fetch(_POSITIONS)) <= past:
            assert loop.time() < deadline, f"projections still at or before {past}"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def event_store_head(cluster: Cluster) -> Position:
    assert cluster.settings.database_url
    pool = await create_pool(cluster.settings.database_url, size=1)
    try:
        return await EventStore(pool).head()
    finally:
        await pool.close()
