"""Named checkpoints in bus.checkpoints (the relay's, and any consumer that keeps its own there)."""

from __future__ import annotations

import asyncpg

from app.bus.lease import Lease
from app.bus.protocol import ConsumerKind
from app.eventstore import START, Position

_LOAD = "SELECT transaction_id, global_position FROM bus.checkpoints WHERE name = $1"
_SAVE = """
INSERT INTO bus.checkpoints (name, transaction_id, global_position) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE
SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position, updated_at = now()
"""

# Lease.fence and the checkpoint move in one statement: FOR KEY SHARE makes a standby's takeover (FOR
# UPDATE) wait for this commit, as it waits for a batch transaction, and leaves renewal free. The lease's
# CTE answers whether it is still held. A projection's move (re-derived after a crash like its batches)
# commits without waiting for the WAL flush: set_config(..., true) holds for the statement's own transaction.
_ADVANCE = """
WITH lease AS (
    SELECT FROM bus.leases WHERE name = $2 AND owner = $3 AND expires_at > clock_timestamp() FOR KEY SHARE
), moved AS (
    UPDATE {table} SET transaction_id = $4, global_position = $5, updated_at = now()
    WHERE name = $1 AND (transaction_id, global_position) < ($4, $5) AND EXISTS (SELECT FROM lease)
)
SELECT EXISTS (SELECT FROM lease){then}
"""
_UNSYNCED = ", set_config('synchronous_commit', 'off', true)"


async def load_checkpoint(conn: asyncpg.Connection, name: str, *, lock: bool = False) -> Position:
    """Return the checkpoint `name` (START when absent); with `lock`, hold its row until commit."""
    if lock:
        # Create the row first so that FOR UPDATE has something to lock even on the first run.
        await conn.execute(
            "INSERT INTO bus.checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
        )
    row = await conn.fetchrow(_LOAD + (" FOR UPDATE" if lock else ""), name)
    return START if row is None else Position(row[0], row[1])


async def save_checkpoint(conn: asyncpg.Connection, name: str, position: Position) -> None:
    """Store `position` as the checkpoint `name`."""
    await conn.execute(_SAVE, name, position.transaction_id, position.global_position)


async def advance_checkpoint(
    conn: asyncpg.Connection, table: str, name: str, position: Position, lease: Lease, *, durable: bool = True
) -> bool:
    """Move checkpoint `name` of `table` forward to `position` (never back) while `lease` is held.

    One statement, no batch transaction: what the runner does for events its consumer ignores. With
    `durable` False its commit does not wait for the WAL flush. Return whether the lease is still held
    (when not, nothing moved).
    """
    args = (name, lease.name, lease.owner, position.transaction_id, position.global_position)
    held: bool = await conn.fetchval(_ADVANCE.format(table=table, then="" if durable else _UNSYNCED), *args)
    return held


class OwnCheckpoint:
    """Checkpoint methods of a consumer that keeps its checkpoint in bus.checkpoints under its `name`.

    Process managers and the mail outbox use it; projections keep theirs in read.projections. They write
    source-of-truth state, so their batches commit durably.
    """

    name: str
    kind = ConsumerKind.PROCESS

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        """Return the checkpoint, holding its row until the batch commits."""
        return await load_checkpoint(conn, self.name, lock=True)

    async def begin_batch(self, conn: asyncpg.Connection, lease: Lease, end: Position) -> Position:
        """Fence `lease` (raise LeaseLost when gone), lock the checkpoint, move it to `end`; return it."""
        await lease.fence(conn, durable=self.kind is not ConsumerKind.PROJECTION)
        checkpoint = await self.load_checkpoint(conn)
        if end > checkpoint:
            await self.save_checkpoint(conn, end)
        return checkpoint

    async def save_checkpoint(self, conn: asyncpg.Connection, position: Position) -> None:
        """Store the checkpoint inside the batch transaction."""
        await save_checkpoint(conn, self.name, position)

    async def advance_checkpoint(self, conn: asyncpg.Connection, position: Position, lease: Lease) -> bool:
        """Move the checkpoint forward to `position` in one statement while `lease` is held."""
        return await advance_checkpoint(conn, "bus.checkpoints", self.name, position, lease)
