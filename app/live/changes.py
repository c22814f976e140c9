"""Reading read.changes: the log that subscriptions replay and catch up from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

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

# The same two reads for many topics at once, each from its own cursor and with its own LIMIT: one
# statement (and one index range scan per topic) instead of one round trip per topic.
_EACH_AFTER = f"""
SELECT h.topic, c.* FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS h(topic, xid, pos)
CROSS JOIN LATERAL (
    SELECT {_COLUMNS} FROM read.changes
    WHERE topic = h.topic AND (transaction_id, global_position) > (h.xid, h.pos)
    ORDER BY transaction_id, global_position, entity_id
    LIMIT $7
) AS c
UNION ALL
SELECT h.topic, c.* FROM unnest($4::text[], $5::bigint[], $6::bigint[], $8::text[]) AS h(topic, xid, pos, id)
CROSS JOIN LATERAL (
    SELECT {_COLUMNS} FROM read.changes
    WHERE topic = h.topic AND (transaction_id, global_position, entity_id) > (h.xid, h.pos, h.id)
    ORDER BY transaction_id, global_position, entity_id
    LIMIT $7
) AS c
ORDER BY 1, 2, 3, 6
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
    return [_notice(topic, row) for row in rows]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a read of one topic starts: after `position`, or after `entity_id` within it."""

    topic: str
    position: Position
    entity_id: str | None = None  # None: after every change at `position`


async def changes_after_each(
    pool: asyncpg.Pool, cursors: Sequence[Cursor], limit: int
) -> dict[str, list[ChangeNotice]]:
    """Return, by topic, up to `limit` changes after each cursor, in position order (one topic once).

    A topic with no change after its cursor is left out.
    """
    whole = [c for c in cursors if c.entity_id is None]
    within = [c for c in cursors if c.entity_id is not None]
    rows = await pool.fetch(
        _EACH_AFTER,
        [c.topic for c in whole],
        [c.position.transaction_id for c in whole],
        [c.position.global_position for c in whole],
        [c.topic for c in within],
        [c.position.transaction_id for c in within],
        [c.position.global_position for c in within],
        limit,
        [c.entity_id for c in within],
    )
    found: dict[str, list[ChangeNotice]] = defaultdict(list)
    for row in rows:
        found[row["topic"]].append(_notice(row["topic"], row))
    return found


def _notice(topic: str, row: asyncpg.Record) -> ChangeNotice:
    return ChangeNotice(
        position=Position(row["transaction_id"], row["global_position"]),
        topic=topic,
        kind=row["kind"],
        entity=row["entity"],
        entity_id=row["entity_id"],
    )


async def latest_position(pool: asyncpg.Pool, topic: str) -> Position:
    """Return the position of the topic's newest change, or START if it has none."""
    row = await pool.fetchrow(_LATEST, topic)
    return START if row is None else Position(row["transaction_id"], row["global_position"])


async def retention_horizon(pool: asyncpg.Pool) -> Position:
    """Return the highest position whose changes may have been purged (START if none was)."""
    row = await pool.fetchrow(_HORIZON)
    return START if row is None else Position(row["transaction_id"], row["global_position"])
