"""Load an aggregate from its stream, and record the events a decision produced for the bus to write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from app.commands.writes import Append, Writes
from app.domain.errors import ConflictError
from app.events.base import Event, Metadata
from app.eventstore import START, EventStore, Position

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
    """Replay one stream."""
    recorded = await ctx.store.read_stream(stream_id, conn=ctx.conn)
    state = fold(evolve, initial, (r.event for r in recorded))
    if not recorded:
        return Loaded(state, 0, START, None)
    return Loaded(state, len(recorded), recorded[-1].position, recorded[0].stream_type)


def save(ctx: Context, stream_id: str, stream_type: str, loaded: Loaded[S], events: list[Event]) -> None:
    """Record the append of `events` after what was loaded; a decision with no events appends nothing."""
    if not events:
        ctx.writes.keep(loaded.position)
        return
    if loaded.stream_type not in (None, stream_type):
        raise ConflictError(f"Id {stream_id} already belongs to a {loaded.stream_type.lower()}.")
    ctx.writes.append(Append(stream_id, stream_type, loaded.version, tuple(events)))
