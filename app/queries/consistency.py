"""Read your writes: wait (bounded) until a projection has passed a position."""

from __future__ import annotations

import asyncio

import asyncpg

from app.db import unavailable_when_down
from app.eventstore.position import Position

POLL_INTERVAL = 0.01

_REACHED = """
SELECT (transaction_id, global_position) >= ($2::bigint, $3::bigint) FROM read.projections WHERE name = $1
"""


# A `timeout` argument rather than asyncio.timeout(): running out is an answer (False), not an error.
@unavailable_when_down
async def wait_for_position(
    pool: asyncpg.Pool,
    projection: str,
    position: Position,
    timeout: float,  # noqa: ASYNC109
) -> bool:
    """Return True once `projection`'s checkpoint is at or past `position`, False after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reached = await pool.fetchval(_REACHED, projection, position.transaction_id, position.global_position)
        if reached:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(POLL_INTERVAL, remaining))
