"""Rules across aggregates, kept by rows written in the command's own write transaction.

Unique names are reservation rows. References are rows (target, source) guarded by advisory locks. A
writer that adds references decided on targets it loaded before its write transaction; in that
transaction it takes a shared lock on each target and checks that the target's stream is still at the
version it loaded. A delete takes the exclusive lock and checks that nothing refers to the target. So
of a concurrent "create a book in category C" and "delete C" exactly one succeeds.

The classes are the steps handlers record (`Context.writes`); the functions run them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from app.domain.errors import ConflictError
from app.eventstore import ConcurrencyError

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


async def changed_stream(conn: asyncpg.Connection, versions: Mapping[str, int]) -> str | None:
    """Return one of the streams that is no longer at the version given for it, or None."""
    query = """
    SELECT t.id FROM unnest($1::text[], $2::int[]) AS t(id, version)
    WHERE (SELECT coalesce(max(stream_version), 0) FROM eventstore.events WHERE stream_id = t.id) <> t.version
    LIMIT 1
    """
    changed: str | None = await conn.fetchval(query, list(versions), list(versions.values()))
    return changed


async def is_referenced(conn: asyncpg.Connection, target: str) -> bool:
    query = "SELECT EXISTS (SELECT 1 FROM eventstore.references WHERE target_stream = $1)"
    return bool(await conn.fetchval(query, target))


async def replace_references(
    conn: asyncpg.Connection, source: str, targets: Sequence[str], *, new: bool = False
) -> None:
    """Make `targets` exactly the streams `source` refers to; `new`: its stream had no event, so no row."""
    if not new:
        await drop_references(conn, source)
    await conn.execute(
        "INSERT INTO eventstore.references (target_stream, source_stream) "
        "SELECT DISTINCT t, $1 FROM unnest($2::text[]) AS t",
        source,
        list(targets),
    )


async def drop_references(conn: asyncpg.Connection, source: str) -> None:
    await conn.execute("DELETE FROM eventstore.references WHERE source_stream = $1", source)


class TargetChanged(ConcurrencyError):
    """A stream the command only read (a book's category) changed before the write: decide again.

    Re-deciding is always what the caller meant here: any expectation it pinned is about the stream it
    writes, and the next attempt checks that again.
    """


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
        await lock_targets_shared(conn, list(self.versions))
        changed = await changed_stream(conn, self.versions)
        if changed is not None:
            raise TargetChanged(changed, self.versions[changed])


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
    new: bool = False  # the source's stream was empty when loaded: it has no reference rows to drop

    async def run(self, conn: asyncpg.Connection) -> None:
        await replace_references(conn, self.source, self.targets, new=self.new)


@dataclass(frozen=True, slots=True)
class DropReferences:
    source: str

    async def run(self, conn: asyncpg.Connection) -> None:
        await drop_references(conn, self.source)
