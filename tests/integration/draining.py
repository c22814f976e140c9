"""Run a consumer's batches by hand, as the consumer runner does, until it has passed a position.

A projection's notices must go to the topics its `topics` declares for their event (docs/events.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from app.bus.protocol import Consumer
from app.eventstore import EventStore, Position, RecordedEvent
from app.live.notices import ChangeNotice, topic_kind
from app.projections import Projection, ProjectionConsumer

WITHIN = 10.0  # seconds for appended events to become visible to a commit-order reader


@dataclass
class Drained:
    """The events the batches applied, in commit order, and the change notices they returned."""

    events: list[RecordedEvent] = field(default_factory=list)
    notices: list[ChangeNotice] = field(default_factory=list)


async def drain(
    pool: asyncpg.Pool,
    store: EventStore,
    consumer: Consumer,
    past: Position | Callable[[], Awaitable[Position]],
    *,
    limit: int = 500,
) -> Drained:
    """Run batches (load, apply, save in one transaction) until none is left and the checkpoint is `past`.

    `past` may be a function, asked again each time the batches run dry (a consumer that appends events
    of its own moves it). Polls (bounded): a commit-order reader sees an event only once every older
    transaction on the server has ended, and other databases' transactions count too.
    """
    drained = Drained()
    deadline = asyncio.get_running_loop().time() + WITHIN
    while True:
        async with pool.acquire() as conn, conn.transaction():
            checkpoint = await consumer.load_checkpoint(conn)
            events = await store.read_all(checkpoint, limit=limit, conn=conn)
            if events:
                notices = await consumer.apply(conn, events)
                if isinstance(consumer, ProjectionConsumer):
                    undeclared = announced(events, notices) - declared(consumer.projection)
                    assert not undeclared, f"{consumer.name}.topics lacks (event, topic) {undeclared}"
                drained.notices += notices
                await consumer.save_checkpoint(conn, events[-1].position)
                drained.events += events
                continue
        if checkpoint >= (past if isinstance(past, Position) else await past()):
            return drained
        assert asyncio.get_running_loop().time() < deadline, "appended events never became visible"
        await asyncio.sleep(0.01)


def announced(events: Sequence[RecordedEvent], notices: Sequence[ChangeNotice]) -> set[tuple[str, str]]:
    """Return (event type, topic kind) of each notice, found by the position of the event it announces."""
    types = {event.position: event.event_type for event in events}
    return {(types[notice.position], topic_kind(notice.topic)) for notice in notices}


def declared(projection: Projection) -> set[tuple[str, str]]:
    """Return (event type, topic kind) of each topic the projection's `topics` declares."""
    return {(name, topic_kind(topic)) for name, topics in projection.topics.items() for topic in topics}
