"""Load an aggregate from its stream, and save the events a decision produced, inside one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from app.commands.base import CommandResult
from app.domain.errors import ConflictError
from app.events.base import Event, Metadata
from app.eventstore import START, EventStore, Position

S = TypeVar("S")
Evolve = Callable[[S, Event], S]


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler works with: the transaction's connection, the event store, and the metadata."""

    conn: asyncpg.Connection
    store: EventStore
    metadata: Metadata


Handler = Callable[[Context, Any], Awaitable[CommandResult]]


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
    """Replay one stream on the transaction's connection."""
    recorded = await ctx.store.read_stream(stream_id, conn=ctx.conn)
    state = fold(evolve, initial, (r.event for r in recorded))
    if not recorded:
        return Loaded(state, 0, START, None)
    return Loaded(state, len(recorded), recorded[-1].position, recorded[0].stream_type)


async def save(
    ctx: Context, stream_id: str, stream_type: str, loaded: Loaded[S], events: list[Event]
) -> Position:
    """Append `events` after what was loaded; a decision with no events keeps the stream's position."""
    if not events:
        return loaded.position
    if loaded.stream_type not in (None, stream_type):
        raise ConflictError(f"Id {stream_id} already belongs to a {loaded.stream_type.lower()}.")
    return await ctx.store.append(
        ctx.conn,
        stream_id=stream_id,
        stream_type=stream_type,
        expected_version=loaded.version,
        events=events,
        metadata=ctx.metadata,
    )
