"""Load an aggregate from its stream (or its snapshot), and record the events a decision produced."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import asyncpg

from app.commands.snapshots import Due, Snapshotted
from app.commands.targets import TargetStates
from app.commands.writes import Append, Writes
from app.domain.errors import ConflictError
from app.events.base import Event, Metadata
from app.eventstore import START, EventStore, Position, RecordedEvent
from app.eventstore import snapshots as stored

log = logging.getLogger(__name__)

S = TypeVar("S")
Evolve = Callable[[S, Event], S]


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler works with: a connection to read from, the event store, the metadata, its writes.

    A handler only reads through `conn`; what it decides to write goes to `writes`, and the bus writes
    that in one short transaction once the handler has returned.
    """

    conn: asyncpg.Connection
    store: EventStore
    metadata: Metadata
    writes: Writes = field(default_factory=Writes)
    snapshot_every: int = 0  # 0: read and take no snapshots
    due: dict[str, Due[Any]] = field(default_factory=dict)  # snapshots to take once the write commits
    # Ids the server minted for this command: their streams are presumed empty and not read. The append's
    # expected version 0 checks it; the bus decides again with a read when it fails (`presumed`).
    minted: frozenset[str] = frozenset()
    presumed: set[str] = field(default_factory=set)
    # States of streams the command only refers to, kept from earlier commands (app/commands/targets.py).
    targets: TargetStates | None = None


# A handler returns the id of the entity it acted on; the bus adds the position once the writes commit.
Handler = Callable[[Context, Any], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    state: S
    version: int  # number of events in the stream: the expected version of the next append
    position: Position  # of the stream's last event; START for a new stream
    stream_type: str | None  # None for a new stream


def fold(evolve: Evolve[S], state: S, events: Iterable[Event]) -> S:
    for event in events:
        state = evolve(state, event)
    return state


async def load(ctx: Context, stream_id: str, evolve: Evolve[S], initial: S) -> Loaded[S]:
    """Replay one stream; a stream of an id minted for the command is presumed empty, not read."""
    if stream_id in ctx.minted:
        ctx.presumed.add(stream_id)
        return Loaded(initial, 0, START, None)
    return _replayed(evolve, initial, await ctx.store.read_stream(stream_id, conn=ctx.conn))


async def load_many(ctx: Context, wanted: Sequence[tuple[str, Evolve[S], S]]) -> list[Loaded[S]]:
    """Replay several streams (id, evolve, initial state) with one query; in the order given."""
    recorded = await ctx.store.read_streams([stream_id for stream_id, _, _ in wanted], conn=ctx.conn)
    return [_replayed(evolve, initial, recorded.get(stream_id, [])) for stream_id, evolve, initial in wanted]


async def load_targets(
    ctx: Context, wanted: Sequence[tuple[str, Evolve[S], S]], *, keep: Callable[[S], bool]
) -> list[Loaded[S]]:
    """As load_many, for streams the command only refers to: kept states are used and not read again.

    Only safe when the write transaction checks each one is still at the version returned (HoldTargets).
    Of the states read, those for which `keep` holds are kept for later commands.
    """
    kept = ctx.targets
    if kept is None:
        return await load_many(ctx, wanted)
    found = [kept.get((stream_id, evolve)) for stream_id, evolve, _ in wanted]
    missing = [w for w, loaded in zip(wanted, found, strict=True) if loaded is None]
    fresh = iter(await load_many(ctx, missing) if missing else [])
    result: list[Loaded[S]] = []
    for (stream_id, evolve, _), loaded in zip(wanted, found, strict=True):
        if loaded is None:
            loaded = next(fresh)
            if keep(loaded.state):
                kept.put((stream_id, evolve), loaded)
        result.append(loaded)
    return result


def _replayed(evolve: Evolve[S], initial: S, recorded: Sequence[RecordedEvent]) -> Loaded[S]:
    state = fold(evolve, initial, (r.event for r in recorded))
    if not recorded:
        return Loaded(state, 0, START, None)
    return Loaded(state, len(recorded), recorded[-1].position, recorded[0].stream_type)


async def load_snapshotted(ctx: Context, stream_id: str, kind: Snapshotted[S]) -> Loaded[S]:
    """Start from the stream's latest snapshot and replay the events after it; replay it all without one."""
    if ctx.snapshot_every <= 0:
        return await load(ctx, stream_id, kind.evolve, kind.initial)
    snapshot = await stored.latest(ctx.conn, stream_id, kind.name)
    loaded = None if snapshot is None else await _after(ctx, snapshot, kind)
    if snapshot is not None and loaded is not None:
        ctx.due[stream_id] = Due(kind, stream_id, loaded.state, loaded.version, since=snapshot.version)
        return loaded
    loaded = await load(ctx, stream_id, kind.evolve, kind.initial)
    unusable = snapshot is not None
    ctx.due[stream_id] = Due(kind, stream_id, loaded.state, loaded.version, since=0, repair=unusable)
    return loaded


async def _after(ctx: Context, snapshot: stored.Snapshot, kind: Snapshotted[S]) -> Loaded[S] | None:
    """Fold the events after `snapshot` into its state; None when the snapshot is unusable."""
    state = kind.read(snapshot)
    if state is None:
        return None
    # From the snapshot's own last event on: that event proves the stream reaches that far.
    recorded = await ctx.store.read_stream(snapshot.stream_id, conn=ctx.conn, from_version=snapshot.version)
    if not recorded or recorded[0].stream_version != snapshot.version:
        log.warning("ignoring snapshot %s of %s: its stream is shorter", kind.name, snapshot.stream_id)
        return None
    state = fold(kind.evolve, state, (r.event for r in recorded[1:]))
    return Loaded(state, recorded[-1].stream_version, recorded[-1].position, recorded[0].stream_type)


def save(
    ctx: Context,
    stream_id: str,
    stream_type: str,
    loaded: Loaded[S],
    events: list[Event],
    *,
    refers_to: Mapping[str, int] | None = None,
) -> None:
    """Record the append of `events` after what was loaded; a decision with no events appends nothing.

    `refers_to`: the streams a new stream refers to, at the versions decided on (Append.refers_to).
    """
    if not events:
        ctx.writes.keep(loaded.position)
        return
    if loaded.stream_type not in (None, stream_type):
        raise ConflictError(f"Id {stream_id} already belongs to a {loaded.stream_type.lower()}.")
    ctx.writes.append(Append(stream_id, stream_type, loaded.version, tuple(events), refers_to))
    if (due := ctx.due.get(stream_id)) is not None:
        ctx.due[stream_id] = replace(due, events=tuple(events))
