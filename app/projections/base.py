"""The projection contract and its adapter to the bus consumer protocol.

A projection owns tables named `read.<name>_g<generation>_*`. `read.projections` holds one row per
projection: `version` (the code version that built the active tables), `generation` (which table set
the stable views point at) and the checkpoint. A rebuild fills generation N+1 while N keeps serving,
then swaps the views in one transaction (app/projections/rebuild.py).

A rebuild announces nothing, so it applies most events as plain statements (`Projection.statement`),
many at a time: statements of different keys commute, so each key's n-th statement goes in wave n
and a wave runs as one statement per SQL text: its `many` form, or else an `executemany`.

A consumer batch announces, so it keeps commit order and runs each run of consecutive `keyed` statements
of one SQL text, each for another row, as one `fetchmany` (one round trip); the rows they return, found
by id, tell `Projection.announce` what changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from app.bus.checkpoints import advance_checkpoint
from app.bus.lease import Lease, LeaseLost
from app.bus.protocol import ConsumerKind, type_names
from app.events.base import Event
from app.eventstore.position import Position
from app.eventstore.types import RecordedEvent
from app.live.notices import ChangeNotice, TopicOf, pattern


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement that applies an event, whose result decides only what the event announces.

    Statements of different keys commute (they read and write different rows); key None orders the
    statement after every statement before it and before every one after it. `many`, when there is one,
    makes the change of `sql` for any number of keys in one statement: it takes each of `sql`'s arguments
    as an array, one element per key.

    `keyed`: the statement returns at most one row, whose first column is the id (a uuid) of its first
    argument, and `Projection.announce` makes the event's notices from that row.
    """

    sql: str
    args: tuple[object, ...]
    key: str | None
    many: str | None = None
    keyed: bool = False


class Projection(Protocol):
    """A read model: its tables per generation, the views queries read, and how events change it."""

    name: str
    version: int
    handles: frozenset[str]  # the event types `apply` changes anything for
    # By event type, the topics (as patterns, `book:{book_id}`) `apply`'s notices about it may go to.
    topics: Mapping[str, tuple[str, ...]]

    def ddl(self, prefix: str) -> list[str]:
        """Return the statements that create one generation's tables (prefix: `<name>_g<N>_`), with the
        indexes and constraints applying an event needs."""
        ...

    def deferred_ddl(self, prefix: str) -> list[str]:
        """Return the statements that complete `ddl`'s tables with the indexes and constraints applying
        an event does without (a rebuild runs them after its bulk load)."""
        ...

    def view_ddl(self, prefix: str) -> list[str]:
        """Return `CREATE OR REPLACE VIEW` statements pointing the stable views at `prefix`'s tables."""
        ...

    def drop_ddl(self, prefix: str) -> list[str]:
        """Return the statements that drop one generation's tables (IF EXISTS)."""
        ...

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str) -> list[ChangeNotice]:
        """Apply one event to `prefix`'s tables; return the changes it made."""
        ...

    def statement(self, event: RecordedEvent, prefix: str) -> Statement | None:
        """Return the one statement `apply` runs for `event`, or None when it runs more (or none)."""
        ...

    async def announce(
        self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str, row: asyncpg.Record | None
    ) -> list[ChangeNotice]:
        """Return the changes `event`'s keyed statement made, from the row it returned (None: no row).

        It may read, never write. It runs after the rest of the statement's run (statements of the same
        SQL text), which must not change what it reads.
        """
        ...


def announces(topics: Mapping[type[Event], Sequence[TopicOf]]) -> Mapping[str, tuple[str, ...]]:
    """Return a projection's `topics`: by event type name, the patterns of the topics it announces on."""
    return {name: tuple(pattern(t) for t in topics[cls]) for cls in topics for name in type_names(cls)}


class ProjectionMissing(LookupError):
    """read.projections has no row for a projection: its migration has not run."""


def table_prefix(name: str, generation: int) -> str:
    """Return the table-name prefix (without the `read.` schema) of one generation."""
    return f"{name}_g{generation}_"


_LOCK_CHECKPOINT = """
SELECT transaction_id, global_position, generation FROM read.projections WHERE name = $1 FOR UPDATE
"""
# The lease's fence (Lease.fence: FOR KEY SHARE until commit, and synchronous_commit off for this
# transaction, as a projection's batch commits), the checkpoint's lock, and its move to the batch's end,
# in one round trip. `held` is NULL when the lease is no longer ours (then nothing moved). The row read
# FOR UPDATE is the newest version, which the UPDATE then moves; the checkpoint returned is the one before.
# The batch also names itself a projector's (app.db.as_projector): it can then never append, and commit order
# does not wait for it. Its statements keep one plan each (a generic plan): they write by key, so a plan made
# for some keys fits every other. PostgreSQL would otherwise plan a statement afresh at every execution
# whenever its generic plan's estimate looks dearer than a plan for the values at hand: a new book's
# statement, whose list of authors the generic plan takes for ten rows and a custom plan for one, was
# planned again for every book once the authors had grown (bench/README.md, "Plans made while the tables
# were small"). A plan made while a table was small is renewed once it has grown (app/planner.py).
# A GIN index (a book's search words, its authors) takes new entries into a pending list, which the insert
# that finds it past `gin_pending_list_limit` (4 MB by default) moves into the index: one batch then paid
# for thousands of books' words, and every read model's lag jumped meanwhile on a small machine. A batch
# keeps it at the least PostgreSQL allows (64 kB): the same work, in pieces small enough to go unnoticed
# (bench/README.md, "The stream read on a line of its own"). A rebuild loads with the default.
# `lease` is read twice, so it is materialized: both are done when it is read.
_BEGIN_BATCH = """
WITH lease AS (
    SELECT set_config('synchronous_commit', 'off', true) AS unsynced, eventstore.as_projector() AS projector,
           set_config('plan_cache_mode', 'force_generic_plan', true) AS generic,
           set_config('gin_pending_list_limit', '64', true) AS pending
    FROM bus.leases
    WHERE name = $2 AND owner = $3 AND expires_at > clock_timestamp() FOR KEY SHARE
), locked AS (
    SELECT transaction_id, global_position, generation FROM read.projections WHERE name = $1 FOR UPDATE
), moved AS (
    UPDATE read.projections AS p SET transaction_id = $4, global_position = $5, updated_at = now()
    FROM locked, lease
    WHERE p.name = $1 AND (locked.transaction_id, locked.global_position) < ($4::bigint, $5::bigint)
)
SELECT (SELECT unsynced FROM lease) AS held, transaction_id, global_position, generation FROM locked
"""
# FOR SHARE: waits for a rebuild's swap (which holds FOR UPDATE) so events never land in old tables.
_GENERATION = "SELECT generation FROM read.projections WHERE name = $1 FOR SHARE"
_SAVE_CHECKPOINT = """
UPDATE read.projections SET transaction_id = $2, global_position = $3, updated_at = now() WHERE name = $1
"""
_RECORD_CHANGES = """
INSERT INTO read.changes (topic, transaction_id, global_position, kind, entity, entity_id)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
ON CONFLICT DO NOTHING
"""


class ProjectionConsumer:
    """Adapt a projection to the bus Consumer protocol (one batch = one transaction of the runner)."""

    kind = ConsumerKind.PROJECTION

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = projection.name
        self.handles = projection.handles
        self.generation: int | None = None
        self._locked_on: asyncpg.Connection | None = None  # where load_checkpoint last locked the row

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        """Lock this projection's row for the batch (fencing a rebuild swap) and return its checkpoint."""
        return self._locked(conn, await conn.fetchrow(_LOCK_CHECKPOINT, self.name))

    async def begin_batch(self, conn: asyncpg.Connection, lease: Lease, end: Position) -> Position:
        """Fence `lease`, lock this projection's row and move its checkpoint to `end`, in one statement.

        Return the checkpoint before the move.
        """
        args = (self.name, lease.name, lease.owner, end.transaction_id, end.global_position)
        row = await conn.fetchrow(_BEGIN_BATCH, *args)
        if row is not None and row["held"] is None:
            raise LeaseLost(f"lease {lease.name} is no longer held by {lease.owner}")
        return self._locked(conn, row)

    def _locked(self, conn: asyncpg.Connection, row: asyncpg.Record | None) -> Position:
        if row is None:
            raise ProjectionMissing(f"read.projections has no row {self.name!r}; run the migrations")
        self.generation, self._locked_on = row["generation"], conn
        return Position(row["transaction_id"], row["global_position"])

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Apply events and log their changes in read.changes; the checkpoint is the caller's.

        Called in the transaction whose load_checkpoint or begin_batch locked the row (the runner's batch,
        a dead letter's retry), it uses the generation read then: no rebuild can swap it before the
        commit. On any other connection it reads the generation itself.
        """
        if not events:
            return []
        generation = self.generation if self._locked_on is conn else None
        if generation is None:
            generation = await conn.fetchval(_GENERATION, self.name)
            if generation is None:
                raise ProjectionMissing(f"read.projections has no row {self.name!r}; run the migrations")
            self.generation = generation
        notices = await apply_in_runs(conn, self.projection, events, table_prefix(self.name, generation))
        await record_changes(conn, notices)
        return notices

    async def save_checkpoint(self, conn: asyncpg.Connection, position: Position) -> None:
        """Move the checkpoint to `position` inside the caller's transaction."""
        await conn.execute(_SAVE_CHECKPOINT, self.name, position.transaction_id, position.global_position)

    async def advance_checkpoint(self, conn: asyncpg.Connection, position: Position, lease: Lease) -> bool:
        """Move the checkpoint forward to `position` in one statement while `lease` is held."""
        return await advance_checkpoint(conn, "read.projections", self.name, position, lease, durable=False)


async def record_changes(conn: asyncpg.Connection, notices: Sequence[ChangeNotice]) -> None:
    """Insert notices into read.changes, the log subscriptions resume from."""
    if not notices:
        return
    await conn.execute(
        _RECORD_CHANGES,
        [n.topic for n in notices],
        [n.position.transaction_id for n in notices],
        [n.position.global_position for n in notices],
        [n.kind for n in notices],
        [n.entity for n in notices],
        [n.entity_id for n in notices],
    )


_Run = list[tuple[RecordedEvent, Statement]]


async def apply_in_runs(
    conn: asyncpg.Connection, projection: Projection, events: Sequence[RecordedEvent], prefix: str
) -> list[ChangeNotice]:
    """Apply `events` in commit order and return their notices, a round trip per run of keyed statements.

    A run is consecutive keyed statements of one SQL text for different rows, so the row each returned
    is found by its id. Running them as one `fetchmany` keeps their order: it is the statements one by one.
    """
    notices: list[ChangeNotice] = []
    run: _Run = []
    ids: set[uuid.UUID] = set()
    for event in events:
        statement = projection.statement(event, prefix)
        if statement is None or not statement.keyed:
            notices += await _announce_run(conn, projection, run, prefix)
            run, ids = [], set()
            notices += await projection.apply(conn, event, prefix)
            continue
        row_id = _row_id(statement.args[0])
        if run and (statement.sql != run[0][1].sql or row_id in ids):
            notices += await _announce_run(conn, projection, run, prefix)
            run, ids = [], set()
        run.append((event, statement))
        ids.add(row_id)
    notices += await _announce_run(conn, projection, run, prefix)
    return notices


async def _announce_run(
    conn: asyncpg.Connection, projection: Projection, run: _Run, prefix: str
) -> list[ChangeNotice]:
    if not run:
        return []
    sql = run[0][1].sql
    if len(run) == 1:
        found = await conn.fetchrow(sql, *run[0][1].args)
        rows = [] if found is None else [found]
    else:
        rows = await conn.fetchmany(sql, [statement.args for _, statement in run])
    by_id = {row[0]: row for row in rows}
    notices: list[ChangeNotice] = []
    for event, statement in run:
        notices += await projection.announce(conn, event, prefix, by_id.get(_row_id(statement.args[0])))
    return notices


def _row_id(value: object) -> uuid.UUID:
    """The id a keyed statement's first argument names, as its returned row gives it back."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def apply_keyed(
    conn: asyncpg.Connection, projection: Projection, event: RecordedEvent, prefix: str
) -> list[ChangeNotice]:
    """Apply `event` alone through its keyed statement (none: it changes nothing) and return its notices."""
    statement = projection.statement(event, prefix)
    if statement is None:
        return []
    return await projection.announce(conn, event, prefix, await conn.fetchrow(statement.sql, *statement.args))


async def apply_quietly(
    conn: asyncpg.Connection, projection: Projection, events: Sequence[RecordedEvent], prefix: str
) -> None:
    """Apply `events` in order, announcing nothing, with a round trip per wave of statements."""
    pending: list[Statement] = []
    for event in events:
        statement = projection.statement(event, prefix)
        if statement is not None and statement.key is not None:
            pending.append(statement)
            continue
        await _run_waves(conn, pending)
        pending = []
        if statement is None:
            await projection.apply(conn, event, prefix)
        else:
            await conn.execute(statement.sql, *statement.args)
    await _run_waves(conn, pending)


_Wave = dict[tuple[str, str | None], list[tuple[object, ...]]]


async def _run_waves(conn: asyncpg.Connection, statements: Sequence[Statement]) -> None:
    for wave in _waves(statements):
        for (sql, many), args in wave.items():
            if many is None or len(args) == 1:
                await conn.executemany(sql, args)
            else:
                await conn.execute(many, *(list(column) for column in zip(*args, strict=True)))


def _waves(statements: Sequence[Statement]) -> list[_Wave]:
    """Put each key's n-th statement in wave n; in a wave, group the arguments by SQL text."""
    depth: dict[str | None, int] = {}
    waves: list[_Wave] = []
    for statement in statements:
        n = depth[statement.key] = depth.get(statement.key, -1) + 1
        if n == len(waves):
            waves.append({})
        waves[n].setdefault((statement.sql, statement.many), []).append(statement.args)
    return waves
