"""Reading read.changes: the log that subscriptions replay and catch up from."""

from __future__ import annotations

import asyncpg

from app.eventstore.position import START, Position
from app.live.notices import ChangeNotice

_COLUMNS = "transaction_id, global_position, kind, entity, entity_id"

# One position can carry several changes of a topic (a rename touches many books), so within a
# position the entity id orders them: pages and catch-ups never split a position and lose the rest.
_AFTER_POSITION = f"""
SELECT {_COLUMNS} FROM read.changes
WHERE topic = $1 AND (transaction_id, global_position) > ($2, $3)
ORDER BY transaction_id, global_position, entity_id
LIMIT $4
"""

_AFTER_ENTITY = f"""
SELECT {_COLUMNS} FROM read.changes
WHERE topic = $1 AND (transaction_id, global_position, entity_id) > ($2, $3, $5)
ORDER BY transaction_id, global_position, entity_id
LIMIT $4
"""

_LATEST = """
SELECT transaction_id, global_position FROM read.changes
WHERE topic = $1
ORDER BY transaction_id DESC, global_position DESC
LIMIT 1
"""

_HORIZON = "SELECT transaction_id, global_position FROM read.changes_horizon"


async def changes_after(
    pool: asyncpg.Pool,
    topic: str,
    after: Position,
    limit: int,
    *,
    after_entity_id: str | None = None,
) -> list[ChangeNotice]:
    """Return up to `limit` changes of a topic after a position, in position order.

    With `after_entity_id`, changes at `after` itself whose entity id sorts after it are included.
    """
    args: list[object] = [topic, after.transaction_id, after.global_position, limit]
    if after_entity_id is None:
        rows = await pool.fetch(_AFTER_POSITION, *args)
    else:
        rows = await pool.fetch(_AFTER_ENTITY, *args, after_entity_id)
    return [
        ChangeNotice(
            position=Position(row["transaction_id"], row["global_position"]),
            topic=topic,
            kind=row["kind"],
            entity=row["entity"],
            entity_id=row["entity_id"],
        )
        for row in rows
    ]


async def latest_position(pool: asyncpg.Pool, topic: str) -> Position:
    """Return the position of the topic's newest change, or START if it has none."""
    row = await pool.fetchrow(_LATEST, topic)
    return START if row is None else Position(row["transaction_id"], row["global_position"])


async def retention_horizon(pool: asyncpg.Pool) -> Position:
    """Return the highest position whose changes may have been purged (START if none was)."""
    row = await pool.fetchrow(_HORIZON)
    return START if row is None else Position(row["transaction_id"], row["global_position"])
