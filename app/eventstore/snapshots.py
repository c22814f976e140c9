"""Snapshot rows: the state one fold of a stream reached at a version, serialized as JSON.

The event store keeps them beside the events they are derived from; what a state means and how it is
serialized belongs to the fold that wrote it (`name`, `schema_version`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

_LATEST = """
SELECT stream_id, name, version, schema_version, state FROM eventstore.snapshots
WHERE stream_id = $1 AND name = $2
"""
# A newer snapshot replaces an older one; one of another shape is replaced whatever its version.
_SAVE = """
INSERT INTO eventstore.snapshots AS s (stream_id, name, version, schema_version, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::jsonb[])
ON CONFLICT (stream_id, name) DO UPDATE
SET version = excluded.version, schema_version = excluded.schema_version, state = excluded.state,
    taken_at = now()
WHERE excluded.version > s.version OR excluded.schema_version <> s.schema_version
"""
_DROP = """
DELETE FROM eventstore.snapshots WHERE (stream_id, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
_ALL = """
SELECT stream_id, name, version, schema_version, state FROM eventstore.snapshots
WHERE (stream_id, name) > ($1, $2) ORDER BY stream_id, name LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    stream_id: str
    name: str  # the fold: an aggregate's stream type, or another context's fold of the stream
    version: int  # the number of the stream's events folded into `state`
    schema_version: int  # the shape of `state`
    state: Any  # JSON data


async def latest(conn: asyncpg.Connection, stream_id: str, name: str) -> Snapshot | None:
    """Return the snapshot of fold `name` of the stream, if one was taken."""
    row = await conn.fetchrow(_LATEST, stream_id, name)
    return None if row is None else _snapshot(row)


async def save(conn: asyncpg.Connection, snapshots: Sequence[Snapshot]) -> None:
    """Store each snapshot unless one at least as new, of the same shape, is there already."""
    await conn.execute(
        _SAVE,
        [s.stream_id for s in snapshots],
        [s.name for s in snapshots],
        [s.version for s in snapshots],
        [s.schema_version for s in snapshots],
        [json.dumps(s.state) for s in snapshots],
    )


async def drop(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Delete the snapshots of these (stream id, name) pairs."""
    if keys:
        await conn.execute(_DROP, [stream_id for stream_id, _ in keys], [name for _, name in keys])


async def every(conn: asyncpg.Connection, *, batch: int = 500) -> AsyncIterator[Snapshot]:
    """Yield every snapshot, by stream id and name."""
    after = ("", "")
    while rows := await conn.fetch(_ALL, *after, batch):
        for row in rows:
            yield _snapshot(row)
        after = (rows[-1]["stream_id"], rows[-1]["name"])


def _snapshot(row: asyncpg.Record) -> Snapshot:
    state = json.loads(row["state"])
    return Snapshot(row["stream_id"], row["name"], row["version"], row["schema_version"], state)
