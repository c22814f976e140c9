"""PostgreSQL event store: append with an expected version, read streams, read all in commit order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg

from app import tracing
from app.events.base import Event, Metadata
from app.events.registry import REGISTRY, Data, EventRegistry
from app.eventstore.errors import ConcurrencyError, TargetChanged
from app.eventstore.position import START, Position
from app.eventstore.types import UNDECODED, RecordedEvent, TypedPage
from app.json_text import dumps
from app.metrics.instruments import events_appended

NOTIFY_CHANNEL = "bookworm_events"  # also named in eventstore.wake_relay() (migration 0013)
# First key of the two-key advisory lock form of the locks that guard references
# (app/commands/constraints.py): keeps them apart from single-key (bigint) advisory locks used
# elsewhere, such as leader election.
REFERENCE_LOCKS = 0x626B7266
# Decoding a page of 2,000 events takes about 15 ms: read_types hands the loop back between slices, so a
# task applying the previous page on the same loop keeps its server busy meanwhile (a rebuild).
_DECODED_AT_ONCE = 100

_COLUMNS = """transaction_id::text::bigint AS xid, global_position, stream_id, stream_type, stream_version,
    event_id, event_type, schema_version, data, metadata, recorded_at"""

# The relay's wake-up goes in the same statement (one round trip less while the transaction holds its
# id): `wake_relay()` NOTIFYs unless the relay is polling (migration 0013), after the rows are inserted
# (so after the transaction id is assigned, which the relay's stop of polling relies on). A NOTIFY is
# delivered at commit, once: PostgreSQL folds identical notifications of one transaction. Each event's id
# is drawn here (`gen_random_uuid()`, version 4, as `uuid.uuid4()` drew them before): building and encoding
# an array of them was a twelfth of the client's work for a new book's append (bench/README.md).
# The events' rows: arrays of their versions, types, schema versions and payloads, unnested, or one event's
# values as they are (the common append: no client-side arrays to build and encode; bench/README.md).
_EVENTS = "unnest($3::int[], $4::text[], $5::int[], $7::text[]) AS x(v, t, s, d)"
_ONE_EVENT = "(VALUES ($3::int, $4::text, $5::int, $7::text)) AS x(v, t, s, d)"

_APPEND = """
WITH appended AS (
    INSERT INTO eventstore.events
        (stream_id, stream_type, stream_version, event_id, event_type, schema_version, data, metadata)
    SELECT $1, $2, v, gen_random_uuid(), t, s, d::jsonb, $6::jsonb
    FROM {events}
    -- The stream must be exactly at the expected version: no gaps in stream versions.
    WHERE $8::int = 0
       OR EXISTS (SELECT 1 FROM eventstore.events WHERE stream_id = $1 AND stream_version = $8::int)
    RETURNING transaction_id, global_position
)
SELECT transaction_id::text::bigint, global_position, eventstore.wake_relay() FROM appended
ORDER BY global_position
"""

# The append of a new stream that refers to others, as one statement (so one implicit transaction): the
# targets' shared locks and the check that each is still at its version (migration 0012: the check reads
# after the locks), then the events and the reference rows, both only when no target moved. The locks
# are held until the statement commits. The first column names a target that moved (no rows appended).
_APPEND_REFERRING = f"""
WITH held AS (
    SELECT eventstore.hold_targets({REFERENCE_LOCKS}, $9::text[], $10::int[]) AS changed
), appended AS (
    INSERT INTO eventstore.events
        (stream_id, stream_type, stream_version, event_id, event_type, schema_version, data, metadata)
    SELECT $1, $2, v, gen_random_uuid(), t, s, d::jsonb, $6::jsonb
    FROM held, {{events}}
    WHERE held.changed IS NULL
      AND ($8::int = 0
           OR EXISTS (SELECT 1 FROM eventstore.events WHERE stream_id = $1 AND stream_version = $8::int))
    RETURNING transaction_id, global_position
), referred AS (
    INSERT INTO eventstore.references (target_stream, source_stream)
    SELECT DISTINCT t, $1 FROM unnest($9::text[]) AS t WHERE EXISTS (SELECT FROM appended)
    ON CONFLICT DO NOTHING
)
SELECT held.changed, a.transaction_id::text::bigint, a.global_position,
       CASE WHEN a.global_position IS NULL THEN NULL ELSE eventstore.wake_relay() END
FROM held LEFT JOIN appended a ON true
ORDER BY a.global_position
"""
# (referring to others, events given as one) -> the statement
_APPENDS = {
    (referring, one): statement.format(events=_ONE_EVENT if one else _EVENTS)
    for referring, statement in ((False, _APPEND), (True, _APPEND_REFERRING))
    for one in (False, True)
}

# Commit order without gaps (docs/architecture.md, "Event store"): only transactions older than every
# running one that may write here are visible (the commit horizon, migration 0014: other databases' running
# transactions do not count), and they are read by (transaction id, position), never by position alone.
_READ_ALL = f"""
SELECT {_COLUMNS} FROM eventstore.events
WHERE transaction_id < (SELECT eventstore.commit_horizon())
  AND (transaction_id, global_position) > ($1::text::xid8, $2)
ORDER BY transaction_id, global_position
LIMIT $3
"""

# The next page of commit order up to an upper bound, and of it only the events of some types (the server
# drops the others) and the page's last event, whatever its type, which tells how far the page reached.
# The page is read by position as _READ_ALL reads it. With the type filter in that scan instead, a planner
# without statistics (autovacuum off) bitmap-scanned and sorted every later event for each page: 0.5 s a
# page instead of 2 ms on 150,000 events.
_READ_TYPES = f"""
SELECT {_COLUMNS}, n, event_type = ANY($5::text[]) AS wanted FROM (
    SELECT *, row_number() OVER page AS n, lead(global_position) OVER page IS NULL AS last FROM (
        SELECT * FROM eventstore.events
        WHERE transaction_id < (SELECT eventstore.commit_horizon())
          AND (transaction_id, global_position) > ($1::text::xid8, $2)
          AND (transaction_id, global_position) <= ($3::text::xid8, $4)
        ORDER BY transaction_id, global_position
        LIMIT $6
    ) events
    WINDOW page AS (ORDER BY transaction_id, global_position)
) numbered
WHERE event_type = ANY($5::text[]) OR last
ORDER BY transaction_id, global_position
"""

# Committed after `after` but not yet visible to commit-order readers: an older transaction still runs.
_HELD_BACK = """
SELECT EXISTS (
    SELECT 1 FROM eventstore.events
    WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
      AND transaction_id >= (SELECT eventstore.commit_horizon())
)
"""

_HEAD = """
SELECT transaction_id::text::bigint, global_position FROM eventstore.events
WHERE transaction_id < (SELECT eventstore.commit_horizon())
ORDER BY transaction_id DESC, global_position DESC LIMIT 1
"""

# Every committed event, whether or not an older transaction still holds it back from commit order.
_NEWEST = """
SELECT transaction_id::text::bigint, global_position FROM eventstore.events
ORDER BY transaction_id DESC, global_position DESC LIMIT 1
"""


class EventStore:
    """Append-only log of domain events; the source of truth."""

    def __init__(self, pool: asyncpg.Pool, registry: EventRegistry = REGISTRY) -> None:
        self._pool = pool
        self._registry = registry

    @property
    def registry(self) -> EventRegistry:
        return self._registry

    async def append(
        self,
        conn: asyncpg.Connection,
        *,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        events: Sequence[Event],
        metadata: Metadata,
        refers_to: Mapping[str, int] | None = None,
    ) -> Position:
        """Append `events` after `expected_version` in the caller's transaction; return the last position.

        `refers_to` (target stream id -> the version the writer read it at), for a stream with no
        reference rows yet: hold the targets (shared locks until commit), append only if each is still
        at its version (else raise TargetChanged), and record the references, in the same statement.
        """
        if not events:
            raise ValueError("nothing to append")
        encoded = [self._registry.encode(e) for e in events]
        with tracing.span("eventstore append", attributes={"bookworm.stream_id": stream_id}):
            rows = await self._insert(
                conn, stream_id, stream_type, expected_version, encoded, metadata, refers_to
            )
        if refers_to is not None:
            changed = rows[0][0] if rows else None
            if changed is not None:
                raise TargetChanged(changed, refers_to[changed], tuple(refers_to))
            rows = [row[1:] for row in rows if row[2] is not None]
        if not rows:
            raise ConcurrencyError(stream_id, expected_version)
        # Counted once the statement succeeded; a caller's transaction may still roll back (rarely).
        events_appended(stream_type, len(rows))
        xid, pos, _ = rows[-1]
        return Position(xid, pos)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        stream_type: str,
        expected_version: int,
        encoded: Sequence[tuple[str, int, Data]],
        metadata: Metadata,
        refers_to: Mapping[str, int] | None = None,
    ) -> list[Any]:
        targets = sorted(refers_to or ())
        referring = () if refers_to is None else (targets, [refers_to[t] for t in targets])
        meta = dumps(metadata.as_dict())
        if len(encoded) == 1:
            [(name, version, data)] = encoded
            events: tuple[Any, ...] = (expected_version + 1, name, version, meta, dumps(data))
        else:
            events = (
                [expected_version + i + 1 for i in range(len(encoded))],
                [name for name, _, _ in encoded],
                [version for _, version, _ in encoded],
                meta,
                [dumps(data) for _, _, data in encoded],
            )
        try:
            rows: list[Any] = await conn.fetch(
                _APPENDS[refers_to is not None, len(encoded) == 1],
                stream_id,
                stream_type,
                *events,
                expected_version,
                *referring,
            )
        except asyncpg.UniqueViolationError:
            raise ConcurrencyError(stream_id, expected_version) from None
        return rows

    async def read_stream(
        self,
        stream_id: str,
        *,
        conn: asyncpg.Connection | None = None,
        from_version: int = 1,
        to_version: int | None = None,
    ) -> list[RecordedEvent]:
        """Return one stream's events in version order (from..to versions), upcast to current schemas."""
        query = f"""SELECT {_COLUMNS} FROM eventstore.events
            WHERE stream_id = $1 AND stream_version >= $2 AND ($3::int IS NULL OR stream_version <= $3)
            ORDER BY stream_version"""
        rows = await (conn or self._pool).fetch(query, stream_id, from_version, to_version)
        return [self._recorded(r) for r in rows]

    async def read_streams(
        self, stream_ids: Sequence[str], *, conn: asyncpg.Connection | None = None
    ) -> dict[str, list[RecordedEvent]]:
        """Return the events of each stream that has any, in version order, with one query."""
        query = f"""SELECT {_COLUMNS} FROM eventstore.events
            WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, stream_version"""
        found: dict[str, list[RecordedEvent]] = {}
        for row in await (conn or self._pool).fetch(query, list(set(stream_ids))):
            found.setdefault(row["stream_id"], []).append(self._recorded(row))
        return found

    async def read_all(
        self,
        after: Position = START,
        *,
        limit: int = 500,
        conn: asyncpg.Connection | None = None,
        decode: bool = True,
    ) -> list[RecordedEvent]:
        """Return up to `limit` committed events after `after`, in commit order, skipping none.

        With decode=False, `event` is UNDECODED: for readers that copy raw fields (the relay) or that
        decode one event at a time so that one bad payload cannot block the rest.
        """
        rows = await (conn or self._pool).fetch(
            _READ_ALL, str(after.transaction_id), after.global_position, limit
        )
        return [self._recorded(r, decode=decode) for r in rows]

    async def read_types(
        self,
        types: Collection[str],
        after: Position,
        until: Position,
        *,
        limit: int = 500,
        conn: asyncpg.Connection | None = None,
    ) -> TypedPage:
        """Read up to `limit` events after `after`, up to `until`, in commit order; return those of `types`.

        The others never leave the server. `until` is a position commit-order readers have reached (a
        checkpoint): the page ends at `until`'s event when fewer than `limit` events lie before it.
        """
        rows = await (conn or self._pool).fetch(
            _READ_TYPES,
            str(after.transaction_id),
            after.global_position,
            str(until.transaction_id),
            until.global_position,
            list(types),
            limit,
        )
        if not rows:
            return TypedPage([], after, 0)
        last = rows[-1]
        events: list[RecordedEvent] = []
        for start in range(0, len(rows), _DECODED_AT_ONCE):
            if start:
                await asyncio.sleep(0)
            events += [self._recorded(r) for r in rows[start : start + _DECODED_AT_ONCE] if r["wanted"]]
        return TypedPage(events, Position(last["xid"], last["global_position"]), last["n"])

    async def held_back(self, after: Position, *, conn: asyncpg.Connection | None = None) -> bool:
        """Tell whether events after `after` are committed but wait for an older transaction to end."""
        held: bool = await (conn or self._pool).fetchval(
            _HELD_BACK, str(after.transaction_id), after.global_position
        )
        return held

    async def head(self, *, conn: asyncpg.Connection | None = None) -> Position:
        """Return the position of the last event a commit-order reader can see now."""
        row = await (conn or self._pool).fetchrow(_HEAD)
        return START if row is None else Position(row[0], row[1])

    async def newest(self, *, conn: asyncpg.Connection | None = None) -> Position:
        """Return the position of the newest committed event (START when there is none).

        No position Bookworm handed out lies beyond it: each is an event's, returned once committed.
        """
        row = await (conn or self._pool).fetchrow(_NEWEST)
        return START if row is None else Position(row[0], row[1])

    def _recorded(self, row: Any, *, decode: bool = True) -> RecordedEvent:
        data = json.loads(row["data"])
        return RecordedEvent(
            position=Position(row["xid"], row["global_position"]),
            stream_id=row["stream_id"],
            stream_type=row["stream_type"],
            stream_version=row["stream_version"],
            event_id=str(row["event_id"]),
            event_type=row["event_type"],
            schema_version=row["schema_version"],
            data=data,
            metadata=json.loads(row["metadata"]),
            recorded_at=row["recorded_at"],
            event=self._registry.decode(row["event_type"], row["schema_version"], data)
            if decode
            else UNDECODED,
        )
