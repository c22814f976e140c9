"""Rules across aggregates, kept by rows written in the command's own write transaction.

Unique names are reservation rows. References are rows (target, source) guarded by advisory locks. A
writer that adds references decided on targets it loaded before its write transaction; in that
transaction it takes a shared lock on each target and checks that the target's stream is still at the
version it loaded (a new stream does both in its append's statement: EventStore.append's `refers_to`).
A delete takes the exclusive lock and checks that nothing refers to the target. So of a concurrent
"create a book in category C" and "delete C" exactly one succeeds.

The classes are the steps handlers record (`Context.writes`); the functions run them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from app.domain.errors import ConflictError
from app.eventstore import TargetChanged
from app.eventstore.store import REFERENCE_LOCKS

_RESERVE = """
INSERT INTO eventstore.reservations (scope, value, owner) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING owner
"""


async def reserve(conn: asyncpg.Connection, scope: str, value: str, owner: str) -> bool:
    """Claim `value` in `scope` for `owner`; tell whether it was free."""
    return await conn.fetchval(_RESERVE, scope, value, owner) is not None


async def release(conn: asyncpg.Connection, scope: str, owner: str) -> None:
    await conn.execute("DELETE FROM eventstore.reservations WHERE scope = $1 AND owner = $2", scope, owner)


# Locks the targets (shared), then checks their versions with a snapshot taken after the locks: one round
# trip (migrations/versions/0012_hold_targets.py). Returns a target no longer at its version, or NULL.
_HOLD = "SELECT eventstore.hold_targets($1, $2::text[], $3::int[])"


async def hold_targets(conn: asyncpg.Connection, versions: Mapping[str, int]) -> str | None:
    """Keep the targets from being deleted until this transaction ends; return one that moved, or None."""
    targets = sorted(versions)
    changed: str | None = await conn.fetchval(_HOLD, REFERENCE_LOCKS, targets, [versions[t] for t in targets])
    return changed


async def lock_target_exclusive(conn: asyncpg.Connection, target: str) -> None:
    """Wait for every transaction that is adding references to `target`, and keep new ones out."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", REFERENCE_LOCKS, target)


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


@dataclass(frozen=True, slots=True)
class Reserve:
    """Claim `value` in `scope` for `owner`; raise ConflictError(`taken`) when another owner holds it."""

    scope: str
    value: str
    owner: str
    taken: str

    async def run(self, conn: asyncpg.Connection) -> None:
        if not await reserve(conn, self.scope, self.value, self.owner):
            raise ConflictError(self.taken)


@dataclass(frozen=True, slots=True)
class Release:
    """Give up what `owner` reserved in `scope`."""

    scope: str
    owner: str

    async def run(self, conn: asyncpg.Connection) -> None:
        await release(conn, self.scope, self.owner)


@dataclass(frozen=True, slots=True)
class HoldTargets:
    """Keep the targets from being deleted until commit; they must be at the versions loaded."""

    versions: Mapping[str, int]  # target stream id -> its version when the handler loaded it

    async def run(self, conn: asyncpg.Connection) -> None:
        changed = await hold_targets(conn, self.versions)
        if changed is not None:
            raise TargetChanged(changed, self.versions[changed], tuple(self.versions))


@dataclass(frozen=True, slots=True)
class RequireUnreferenced:
    """Keep new references to `target` out until commit; raise ConflictError(`used`) if any exist."""

    target: str
    used: str

    async def run(self, conn: asyncpg.Connection) -> None:
        await lock_target_exclusive(conn, self.target)
        if await is_referenced(conn, self.target):
            raise ConflictError(self.used)


@dataclass(frozen=True, slots=True)
class ReplaceReferences:
    """Make `targets` exactly the streams `source` refers to."""

    source: str
    targets: tuple[str, ...]

    async def run(self, conn: asyncpg.Connection) -> None:
        await replace_references(conn, self.source, self.targets)


@dataclass(frozen=True, slots=True)
class DropReferences:
    source: str

    async def run(self, conn: asyncpg.Connection) -> None:
        await drop_references(conn, self.source)
