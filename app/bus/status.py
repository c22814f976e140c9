"""What the bus is doing: the relay's checkpoint and lag, and who holds which lease."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from app.bus.checkpoints import load_checkpoint
from app.bus.relay import CHECKPOINT, RELAY_LOCK
from app.eventstore import EventStore, Position

_LAG = """
SELECT count(*) FROM eventstore.events
WHERE transaction_id < (SELECT eventstore.commit_horizon())
  AND (transaction_id, global_position) > ($1::text::xid8, $2)
"""
# A bigint advisory key shows in pg_locks as (classid, objid) = (high, low) 32 bits, objsubid 1.
_LEADER = """
SELECT EXISTS (SELECT 1 FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = 0 AND objid = $1 AND objsubid = 1 AND granted)
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayStatus:
    checkpoint: Position
    head: Position
    lag: int  # committed events not yet relayed
    leader_alive: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaseStatus:
    name: str
    owner: str
    expires_at: dt.datetime
    expired: bool


async def relay_status(pool: asyncpg.Pool, event_store: EventStore) -> RelayStatus:
    """Return the relay's checkpoint, the event store's head and the lag between them in events."""
    async with pool.acquire() as conn:
        checkpoint, lag = await _checkpoint_and_lag(conn, CHECKPOINT)
        head = await event_store.head(conn=conn)
        alive = await conn.fetchval(_LEADER, RELAY_LOCK)
    return RelayStatus(checkpoint=checkpoint, head=head, lag=lag, leader_alive=alive)


async def checkpoint_status(pool: asyncpg.Pool, name: str) -> tuple[Position, int]:
    """Return the bus.checkpoints checkpoint `name` (a process consumer's) and its lag in events."""
    async with pool.acquire() as conn:
        return await _checkpoint_and_lag(conn, name)


async def _checkpoint_and_lag(conn: asyncpg.Connection, name: str) -> tuple[Position, int]:
    checkpoint = await load_checkpoint(conn, name)
    lag: int = await conn.fetchval(_LAG, str(checkpoint.transaction_id), checkpoint.global_position)
    return checkpoint, lag


async def lease_status(pool: asyncpg.Pool) -> list[LeaseStatus]:
    """Return every consumer lease: its owner and when it expires."""
    rows = await pool.fetch(
        """SELECT name, owner, expires_at, expires_at < clock_timestamp() AS expired
        FROM bus.leases ORDER BY name"""
    )
    return [LeaseStatus(**dict(r)) for r in rows]
