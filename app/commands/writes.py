"""What a command decided to write, kept in order until the bus writes it all in one short transaction.

A handler reads and decides first and records its writes here: appends with their expected versions,
reservation and reference rows, and the checks that must hold when they commit. The bus then opens one
transaction and runs them in the order they were recorded. That transaction does SQL only, so it holds
a transaction id (which holds back every reader of all events) for milliseconds, never while the
handler replays a stream or decides.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from app.events.base import Event, Metadata
from app.eventstore import START, EventStore, Position


class Write(Protocol):
    """One step of a command's write transaction other than an append (a row, a lock, a check)."""

    async def run(self, conn: asyncpg.Connection) -> None: ...


@dataclass(frozen=True, slots=True)
class Append:
    """Events to append to one stream, which must still be at `expected_version`.

    `refers_to`: for a new stream, the streams it refers to, each with the version it was decided on;
    the same statement holds them, checks them and records the references (EventStore.append).
    """

    stream_id: str
    stream_type: str
    expected_version: int
    events: tuple[Event, ...]
    refers_to: Mapping[str, int] | None = None


class Writes:
    """The writes one attempt of a command decided on, in order."""

    def __init__(self) -> None:
        self._steps: list[Append | Write] = []
        self._position = START

    @property
    def empty(self) -> bool:
        return not self._steps

    @property
    def single_statement(self) -> bool:
        """Whether the writes are one append alone: one statement, atomic without a transaction."""
        return len(self._steps) == 1 and isinstance(self._steps[0], Append)

    @property
    def position(self) -> Position:
        """The command's position when it writes nothing."""
        return self._position

    def events(self) -> Iterator[Event]:
        """Yield the events of every recorded append, in order."""
        for step in self._steps:
            if isinstance(step, Append):
                yield from step.events

    def append(self, append: Append) -> None:
        """Record an append; once written, its last event's position is the command's position."""
        self._steps.append(append)

    def keep(self, position: Position) -> None:
        """Record the command's position when it appends nothing: where the stream already is."""
        self._position = position

    def add(self, write: Write) -> None:
        self._steps.append(write)

    async def run(self, conn: asyncpg.Connection, store: EventStore, metadata: Metadata) -> Position:
        """Write every step in the caller's transaction; return the position of the last append."""
        position = self._position
        for step in self._steps:
            if isinstance(step, Append):
                position = await store.append(
                    conn,
                    stream_id=step.stream_id,
                    stream_type=step.stream_type,
                    expected_version=step.expected_version,
                    events=step.events,
                    metadata=metadata,
                    refers_to=step.refers_to,
                )
            else:
                await step.run(conn)
        return position
