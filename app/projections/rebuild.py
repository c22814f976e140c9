"""Rebuild a projection with zero downtime: fill new tables, catch up, swap the views in one transaction.

The new generation is filled up to the live consumer's checkpoint, never past it: the consumer goes
on from its checkpoint on the new tables after the swap, so no event is applied twice and every
change after the checkpoint is still announced by the consumer. Events the consumer parked are
replayed like any other, so the swap resolves their dead letters. The rebuild itself writes no
read.changes rows (subscribers already saw those changes). The replay fills tables with only the
indexes and constraints applying events needs; the others (`Projection.deferred_ddl`) come after it, each
checking every row in one pass, so tables that break one are dropped and the views never move onto them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from app.db import as_projector, lift_limits
from app.eventstore import EventStore, Position, TypedPage
from app.eventstore.position import START
from app.projections import PROJECTIONS
from app.projections.base import Projection, ProjectionMissing, apply_quietly, table_prefix

BATCH_SIZE = 2000

_CHECKPOINT = "SELECT transaction_id, global_position, generation FROM read.projections WHERE name = $1"
_SWAP_SET = "UPDATE read.projections SET generation = $2, version = $3, updated_at = now() WHERE name = $1"
# The new generation replayed every event up to the checkpoint, parked ones included: a later
# `deadletters retry` would apply them a second time (a rating counted twice).
_RESOLVE_PARKED = """
UPDATE bus.dead_letters SET resolved_at = now()
WHERE consumer = $1 AND resolved_at IS NULL AND (transaction_id, global_position) <= ($2, $3)
"""


class UnknownProjection(LookupError):
    """No projection has that name."""


class RebuildInProgress(RuntimeError):
    """Another process is rebuilding the same projection."""


class RebuildRejected(RuntimeError):
    """The replayed tables break a constraint of the read model: the views stay on the current tables."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    name: str
    old_generation: int
    new_generation: int
    events: int  # the store's events up to the checkpoint
    applied: int  # those the projection handles
    position: str
    seconds: float

    @property
    def rate(self) -> float:
        """Events replayed per second of the whole rebuild (tables, replay, swap, drop)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class _Progress:
    """How far the new generation got: the last event read, the events read and those applied."""

    position: Position = START
    events: int = 0
    applied: int = 0

    def advance(self, page: TypedPage) -> None:
        self.position = page.end
        self.events += page.read
        self.applied += len(page.events)


async def rebuild(
    pool: asyncpg.Pool, event_store: EventStore, name: str, *, batch_size: int = BATCH_SIZE
) -> RebuildReport:
    """Replay the event store into a new generation of `name`'s tables and swap the views onto it."""
    projection = PROJECTIONS.get(name)
    if projection is None:
        raise UnknownProjection(f"no projection named {name!r}; known: {', '.join(sorted(PROJECTIONS))}")
    async with pool.acquire() as guard:
        if not await guard.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"rebuild:{name}"):
            raise RebuildInProgress(f"projection {name!r} is already being rebuilt")
        try:
            return await _rebuild(pool, event_store, projection, batch_size)
        finally:
            await guard.execute("SELECT pg_advisory_unlock(hashtext($1))", f"rebuild:{name}")


async def _rebuild(
    pool: asyncpg.Pool, store: EventStore, projection: Projection, batch_size: int
) -> RebuildReport:
    started = time.perf_counter()
    _, old = await _checkpoint(pool, projection.name)
    new = old + 1
    new_prefix = table_prefix(projection.name, new)
    # A crashed rebuild may have left this generation's tables behind.
    await _execute(pool, projection.drop_ddl(new_prefix) + projection.ddl(new_prefix))
    try:
        progress = _Progress()
        await _replay(pool, store, projection, new_prefix, batch_size, progress)
        await _complete(pool, projection, new_prefix)
        await _analyze(pool, new_prefix)
        await _swap(pool, store, projection, old, new, batch_size, progress)
    except BaseException:
        await _execute(pool, projection.drop_ddl(new_prefix))
        raise
    # Queries still reading the old tables finish first: DROP waits for their locks.
    await _execute(pool, projection.drop_ddl(table_prefix(projection.name, old)))
    seconds = time.perf_counter() - started
    return RebuildReport(
        projection.name, old, new, progress.events, progress.applied, str(progress.position), seconds
    )


async def _complete(pool: asyncpg.Pool, projection: Projection, prefix: str) -> None:
    """Add the indexes and constraints the replay went without: each checks every row in one pass."""
    try:
        await _execute(pool, projection.deferred_ddl(prefix))
    except asyncpg.IntegrityConstraintViolationError as exc:
        broken = f"{exc.message}: {exc.detail}" if exc.detail else exc.message
        raise RebuildRejected(
            f"the replayed {projection.name} tables break a constraint ({broken}); "
            "the views stay on the current tables"
        ) from None


async def _analyze(pool: asyncpg.Pool, prefix: str) -> None:
    """Give the planner statistics before queries arrive: autovacuum may be off, or not there yet."""
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'read' AND starts_with(tablename, $1)", prefix
    )
    await _execute(pool, [f'ANALYZE read."{table}"' for (table,) in tables])


async def _replay(
    pool: asyncpg.Pool,
    store: EventStore,
    projection: Projection,
    prefix: str,
    batch_size: int,
    progress: _Progress,
) -> None:
    """Apply events up to the (moving) live checkpoint in short transactions.

    The next page is read and decoded while the server applies this one.
    """
    target, _ = await _checkpoint(pool, projection.name)
    page = asyncio.ensure_future(_page(store, projection, progress.position, target, batch_size))
    try:
        while True:
            read = await page
            if not read.read:
                return
            progress.advance(read)
            target, _ = await _checkpoint(pool, projection.name)
            page = asyncio.ensure_future(_page(store, projection, progress.position, target, batch_size))
            if read.events:
                async with _transaction(pool) as conn:
                    await apply_quietly(conn, projection, read.events, prefix)
    finally:
        page.cancel()
        await asyncio.gather(page, return_exceptions=True)


async def _swap(
    pool: asyncpg.Pool,
    store: EventStore,
    projection: Projection,
    old: int,
    new: int,
    batch_size: int,
    progress: _Progress,
) -> None:
    """Under the checkpoint row lock (which holds the live consumer), catch up and move the views."""
    prefix = table_prefix(projection.name, new)
    async with _transaction(pool) as conn:
        row = await conn.fetchrow(_CHECKPOINT + " FOR UPDATE", projection.name)
        if row is None or row["generation"] != old:
            raise RebuildInProgress(f"projection {projection.name!r} changed generation during the rebuild")
        target = Position(row["transaction_id"], row["global_position"])
        while True:
            read = await _page(store, projection, progress.position, target, batch_size, conn)
            if not read.read:
                break
            await apply_quietly(conn, projection, read.events, prefix)
            progress.advance(read)
        for statement in projection.view_ddl(prefix):
            await conn.execute(statement)
        await conn.execute(_SWAP_SET, projection.name, new, projection.version)
        await conn.execute(_RESOLVE_PARKED, projection.name, target.transaction_id, target.global_position)


async def _page(
    store: EventStore,
    projection: Projection,
    after: Position,
    target: Position,
    limit: int,
    conn: asyncpg.Connection | None = None,
) -> TypedPage:
    """Read the next `limit` events up to `target`; only those the projection handles (no others would
    change anything) leave the server, decoded."""
    if after >= target:
        return TypedPage([], after, 0)
    return await store.read_types(projection.handles, after, target, limit=limit, conn=conn)


async def _checkpoint(pool: asyncpg.Pool, name: str) -> tuple[Position, int]:
    row = await pool.fetchrow(_CHECKPOINT, name)
    if row is None:
        raise ProjectionMissing(f"read.projections has no row {name!r}; run the migrations")
    return Position(row["transaction_id"], row["global_position"]), row["generation"]


@asynccontextmanager
async def _transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One of the rebuild's transactions: no API limits (DROP waits for the queries still reading the old
    tables), and a projector's: it never appends, so however long it runs it holds no live event back."""
    async with pool.acquire() as conn, conn.transaction():
        await lift_limits(conn)
        await as_projector(conn)
        yield conn


async def _execute(pool: asyncpg.Pool, statements: Sequence[str]) -> None:
    async with _transaction(pool) as conn:
        for statement in statements:
            await conn.execute(statement)
