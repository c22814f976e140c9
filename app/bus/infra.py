"""Which failures mean "a server is unreachable" (wait and retry) rather than "this event is bad"."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from redis.exceptions import RedisError, ResponseError

from app import db

# Loops wait and retry on these; a connection reported closed (InterfaceError) counts as well, and so
# does asyncpg's InternalClientError, which a connection cut by a PostgreSQL shutdown raises: never the
# event's fault.
POSTGRES_DOWN: tuple[type[BaseException], ...] = db.MAYBE_DOWN

REDIS_DOWN: tuple[type[BaseException], ...] = (RedisError, OSError)


def is_nogroup(exc: BaseException) -> bool:
    """Tell whether Redis lost the stream or its consumer group (flush, restart, deleted key)."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


def text(value: Any) -> str:
    """Return a Redis reply value as str, whatever `decode_responses` the client was built with."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def close_connection(conn: asyncpg.Connection, timeout: float = 2.0) -> None:  # noqa: ASYNC109
    """Close a dedicated connection politely, or drop it when PostgreSQL does not answer in `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            await conn.close()
    except Exception:
        conn.terminate()
