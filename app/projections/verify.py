"""Verify derived data: replay the event store into scratch tables and compare them with the live read
models, and fold each snapshot's stream to compare it with the snapshot.

Everything happens in one REPEATABLE READ transaction that is rolled back at the end: the live tables,
each projection's checkpoint and the event store are read in one snapshot, the scratch tables are filled
with the events up to that projection's checkpoint (exactly what the live tables claim to hold), and the
scratch tables vanish with the rollback. Rows are compared as text, so every column type compares and a
difference prints as the row PostgreSQL would show. Snapshots are checked the same way, in a snapshot of
their own: each one's serialized state must equal its fold's serialization of the stream's first
`version` events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from app.commands.snapshots import FOLDS
from app.commands.streams import fold
from app.db import lift_limits
from app.eventstore import EventStore, Position
from app.eventstore import snapshots as stored
from app.eventstore.position import START
from app.projections import PROJECTIONS
from app.projections.base import Projection, ProjectionMissing, table_prefix

BATCH_SIZE = 1000

_CHECKPOINT = "SELECT transaction_id, global_position, generation FROM read.projections WHERE name = $1"
_TABLES = """
SELECT substr(tablename, length($1) + 1) FROM pg_tables
WHERE schemaname = 'read' AND starts_with(tablename, $1) ORDER BY tablename
"""
# Both directions in one statement; EXCEPT ALL so that a duplicated row is a difference too.
_DIFFERENCES = """
(SELECT 'live only' AS side, t::text AS row FROM (
    SELECT * FROM read."{live}" EXCEPT ALL SELECT * FROM read."{replay}") t ORDER BY 2)
UNION ALL
(SELECT 'replay only', t::text FROM (
    SELECT * FROM read."{replay}" EXCEPT ALL SELECT * FROM read."{live}") t ORDER BY 2)
"""
_PARKED = "SELECT count(*) FROM bus.dead_letters WHERE consumer = $1 AND resolved_at IS NULL"


@dataclass(frozen=True, slots=True)
class TableDifference:
    table: str
    side: str  # "live only" or "replay only"
    row: str


@dataclass(slots=True)
class ProjectionCheck:
    """What verifying one projection found."""

    name: str
    position: Position
    events: int = 0
    rows: int = 0
    differences: list[TableDifference] = field(default_factory=list)
    parked: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


async def verify(
    pool: asyncpg.Pool, store: EventStore, names: Sequence[str] | None = None
) -> list[ProjectionCheck]:
    """Replay every projection (or those named) into scratch tables and compare them with the live ones."""
    projections = [PROJECTIONS[name] for name in names] if names else list(PROJECTIONS.values())
    async with pool.acquire() as conn:
        tx = conn.transaction(isolation="repeatable_read")
        await tx.start()
        try:
            await lift_limits(conn)
            return [await _verify_one(conn, store, projection) for projection in projections]
        finally:
            await tx.rollback()


async def _verify_one(conn: asyncpg.Connection, store: EventStore, projection: Projection) -> ProjectionCheck:
    row = await conn.fetchrow(_CHECKPOINT, projection.name)
    if row is None:
        raise ProjectionMissing(f"read.projections has no row {projection.name!r}; run the migrations")
    check = ProjectionCheck(projection.name, Position(row["transaction_id"], row["global_position"]))
    live = table_prefix(projection.name, row["generation"])
    scratch = f"{projection.name}_verify{os.getpid()}_"
    for statement in projection.ddl(scratch) + projection.deferred_ddl(scratch):
        await conn.execute(statement)
    check.events = await _replay(conn, store, projection, scratch, check.position)
    for suffix in await _tables(conn, live):
        check.rows += await conn.fetchval(f'SELECT count(*) FROM read."{live}{suffix}"')
        found = await conn.fetch(_DIFFERENCES.format(live=live + suffix, replay=scratch + suffix))
        check.differences += [TableDifference(suffix, r["side"], r["row"]) for r in found]
    if set(await _tables(conn, scratch)) != set(await _tables(conn, live)):
        check.differences.append(TableDifference("*", "tables", "the live generation has other tables"))
    check.parked = await conn.fetchval(_PARKED, projection.name)
    return check


async def _replay(
    conn: asyncpg.Connection, store: EventStore, projection: Projection, prefix: str, target: Position
) -> int:
    position, count = START, 0
    while position < target:
        events = [
            e for e in await store.read_all(position, limit=BATCH_SIZE, conn=conn) if e.position <= target
        ]
        if not events:
            break
        for event in events:
            await projection.apply(conn, event, prefix)
        position, count = events[-1].position, count + len(events)
    return count


async def _tables(conn: asyncpg.Connection, prefix: str) -> list[str]:
    return [suffix for (suffix,) in await conn.fetch(_TABLES, prefix)]


def report(checks: Sequence[ProjectionCheck], *, shown: int | None = None) -> list[str]:
    """Return the lines `bookworm verify` prints: one per projection, then each difference (or `shown`
    per table, and how many more)."""
    lines: list[str] = []
    for check in checks:
        verdict = "ok" if check.ok else f"{len(check.differences)} differences"
        lines.append(
            f"{check.name}: {verdict} ({check.events} events replayed up to {check.position}, "
            f"{check.rows} live rows)"
        )
        by_table: dict[str, int] = {}
        for difference in check.differences:
            by_table[difference.table] = by_table.get(difference.table, 0) + 1
            if shown is None or by_table[difference.table] <= shown:
                lines.append(f"  {difference.table} {difference.side}: {difference.row}")
        if shown is not None:
            lines += [f"  {table}: {n - shown} more" for table, n in by_table.items() if n > shown]
        if check.parked and not check.ok:
            lines.append(
                f"  {check.parked} unresolved dead letters for {check.name} may explain this: "
                "`bookworm deadletters list`"
            )
    return lines


@dataclass(frozen=True, slots=True)
class SnapshotDifference:
    name: str
    stream_id: str
    version: int
    problem: str


@dataclass(slots=True)
class SnapshotCheck:
    """What checking every snapshot against a replay of its stream found."""

    checked: int = 0
    ignored: int = 0  # of another shape, or of a fold this version does not know: loads ignore them
    differences: list[SnapshotDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


async def verify_snapshots(pool: asyncpg.Pool, store: EventStore) -> SnapshotCheck:
    """Fold each snapshot's stream up to the snapshot's version and compare the two serialized states."""
    check = SnapshotCheck()
    async with pool.acquire() as conn:
        tx = conn.transaction(isolation="repeatable_read", readonly=True)
        await tx.start()
        try:
            await lift_limits(conn)
            async for snapshot in stored.every(conn):
                await _check_snapshot(conn, store, snapshot, check)
        finally:
            await tx.rollback()
    return check


async def _check_snapshot(
    conn: asyncpg.Connection, store: EventStore, snapshot: stored.Snapshot, check: SnapshotCheck
) -> None:
    kind = FOLDS.get(snapshot.name)
    if kind is None or kind.schema_version != snapshot.schema_version:
        check.ignored += 1
        return
    check.checked += 1
    recorded = await store.read_stream(snapshot.stream_id, conn=conn, to_version=snapshot.version)
    replayed = kind.dump(fold(kind.evolve, kind.initial, (r.event for r in recorded)))
    if len(recorded) != snapshot.version:
        problem = f"the stream has {len(recorded)} events, fewer than the snapshot's version"
    elif kind.read(snapshot) is None:
        problem = f"the state does not read back as shape {snapshot.schema_version}"
    elif snapshot.state != replayed:
        problem = f"holds {_short(snapshot.state)}; a replay gives {_short(replayed)}"
    else:
        return
    check.differences.append(SnapshotDifference(snapshot.name, snapshot.stream_id, snapshot.version, problem))


def _short(state: object, limit: int = 300) -> str:
    text = json.dumps(state, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def report_snapshots(check: SnapshotCheck, *, shown: int | None = None) -> list[str]:
    """Return the lines `bookworm verify` prints for the snapshots: a verdict, then each difference.

    None when there is no snapshot at all (a young store, or snapshots switched off).
    """
    if not (check.checked or check.ignored):
        return []
    verdict = "ok" if check.ok else f"{len(check.differences)} differences"
    counts = f"{check.checked} checked against a replay, {check.ignored} of an older shape"
    lines = [f"snapshots: {verdict} ({counts})"]
    for difference in check.differences[:shown]:
        lines.append(f"  {difference.name} {difference.stream_id}@{difference.version}: {difference.problem}")
    if shown is not None and len(check.differences) > shown:
        lines.append(f"  {len(check.differences) - shown} more")
    if not check.ok:
        lines.append("  snapshots are derived data: delete a wrong one (eventstore.snapshots); it is retaken")
    return lines
