"""Commit-order reads that do not decode payloads: for events no registered class can decode yet."""

from __future__ import annotations

import json

import asyncpg

from app.events import Event
from app.eventstore import Position, RecordedEvent

_READ = """
SELECT transaction_id::text::bigint, global_position, stream_id, stream_type, stream_version,
    event_id::text, event_type, schema_version, data::text, metadata::text, recorded_at
FROM eventstore.events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  AND (transaction_id, global_position) > ($1::text::xid8, $2)
ORDER BY transaction_id, global_position
LIMIT $3
"""
# Stands in for the decoded event of a row that cannot be decoded; only raw fields are used.
UNDECODED = Event()


async def read_undecoded(
    conn: asyncpg.Connection | asyncpg.Pool, after: Position, limit: int
) -> list[RecordedEvent]:
    """Return what EventStore.read_all would, with `event` left as UNDECODED."""
    rows = await conn.fetch(_READ, str(after.transaction_id), after.global_position, limit)
    return [
        RecordedEvent(
            position=Position(r[0], r[1]),
            stream_id=r[2],
            stream_type=r[3],
            stream_version=r[4],
            event_id=r[5],
            event_type=r[6],
            schema_version=r[7],
            data=json.loads(r[8]),
            metadata=json.loads(r[9]),
            recorded_at=r[10],
            event=UNDECODED,
        )
        for r in rows
    ]
