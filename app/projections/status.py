"""Where each projection stands against the event store, and read.changes retention."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.eventstore import EventStore, Position
from app.projections import PROJECTIONS

_ROWS = """
SELECT name, version, generation, transaction_id, global_position FROM read.projections ORDER BY name
"""
# The same visibility rule as every commit-order reader (docs/architecture.md, "Event store").
_LAG = """
SELECT count(*) FROM eventstore.events
WHERE transaction_id < (SELECT eventstore.commit_horizon())
  AND (transaction_id, global_position) > ($1::text::xid8, $2)
"""
# One statement, so the rows go and the horizon rises together: a resume never sees one without the other.
_PURGE = """
WITH purged AS (
    DELETE FROM read.changes WHERE recorded_at < now() - make_interval(secs => $1)
    RETURNING transaction_id, global_position
), highest AS (
    SELECT transaction_id, global_position FROM purged
    ORDER BY transaction_id DESC, global_position DESC
    LIMIT 1
), raised AS (
    UPDATE read.changes_horizon AS horizon
    SET transaction_id = highest.transaction_id, global_position = highest.global_position
    FROM highest
    WHERE (highest.transaction_id, highest.global_position)
        > (horizon.transaction_id, horizon.global_position)
)
SELECT count(*) FROM purged
"""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    version: int  # the code version that built the active tables
    generation: int  # the active table set: read.<name>_g<generation>_*
    position: str
    head: str
    lag: int  # events after the checkpoint, in commit order

    @property
    def rebuild_needed(self) -> bool:
        """Tell whether the running code is newer than the tables it serves from."""
        projection = PROJECTIONS.get(self.name)
        return projection is not None and projection.version > self.version


async def projection_status(pool: asyncpg.Pool, event_store: EventStore) -> list[ProjectionStatus]:
    """Return each projection's checkpoint, the event store's head, and the lag between them."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_ROWS)
        lags = []
        for row in rows:
            position = Position(row["transaction_id"], row["global_position"])
            lag = await conn.fetchval(_LAG, str(position.transaction_id), position.global_position)
            lags.append((row, position, lag))
    # The head is read after the lags, so it is never behind an event a lag counted (events become
    # visible in commit order as older transactions end, possibly between two statements).
    head = str(await event_store.head())
    return [
        ProjectionStatus(row["name"], row["version"], row["generation"], str(position), head, lag)
        for row, position, lag in lags
    ]


async def purge_changes(pool: asyncpg.Pool, older_than_days: float) -> int:
    """Delete read.changes rows older than the retention period, raise the horizon; return how many went."""
    purged: int = await pool.fetchval(_PURGE, older_than_days * 86400.0)
    return purged
