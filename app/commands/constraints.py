"""Rules across aggregates, kept by rows written in the command's own transaction.

Unique names are reservation rows. References are rows (target, source) guarded by advisory locks:
a writer that adds references holds a shared lock on each target while it checks the target exists,
and a delete holds the exclusive lock while it checks nothing refers to the target, so of a
concurrent "create a book in category C" and "delete C" exactly one succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

# First key of the two-key advisory lock form: keeps these locks apart from single-key (bigint)
# advisory locks used elsewhere, such as leader election.
_REFERENCE_LOCKS = 0x626B7266

_RESERVE = """
INSERT INTO eventstore.reservations (scope, value, owner) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING owner
"""


async def reserve(conn: asyncpg.Connection, scope: str, value: str, owner: str) -> bool:
    """Claim `value` in `scope` for `owner`; tell whether it was free."""
    return await conn.fetchval(_RESERVE, scope, value, owner) is not None


async def release(conn: asyncpg.Connection, scope: str, owner: str) -> None:
    await conn.execute("DELETE FROM eventstore.reservations WHERE scope = $1 AND owner = $2", scope, owner)


async def lock_targets_shared(conn: asyncpg.Connection, targets: Sequence[str]) -> None:
    """Keep `targets` from being deleted until this transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared($1, hashtext(t)) FROM unnest($2::text[]) AS t",
        _REFERENCE_LOCKS,
        sorted(set(targets)),
    )


async def lock_target_exclusive(conn: asyncpg.Connection, target: str) -> None:
    """Wait for every transaction that is adding references to `target`, and keep new ones out."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _REFERENCE_LOCKS, target)


async def is_referenced(conn: asyncpg.Connection, target: str) -> bool:
    query = "SELECT EXISTS (SELECT 1 FROM eventstore.references WHERE target_stream = $1)"
    return bool(await conn.fetchval(query, target))


async def replace_references(conn: asyncpg.Connection, source: str, targets: Sequence[str]) -> None:
    """Make `targets` exactly the streams `source` refers to."""
    await drop_references(conn, source)
    await conn.execute(
        "INSERT INTO eventstore.references (target_stream, source_stream) "
        "SELECT DISTINCT t, $1 FROM unnest($2::text[]) AS t",
        source,
        list(targets),
    )


async def drop_references(conn: asyncpg.Connection, source: str) -> None:
    await conn.execute("DELETE FROM eventstore.references WHERE source_stream = $1", source)
