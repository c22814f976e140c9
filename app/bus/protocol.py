"""The port a consumer group implements, and the port the runner announces committed changes through."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from app.bus.lease import Lease
from app.events import REGISTRY, Event
from app.eventstore import Position, RecordedEvent
from app.live.notices import ChangeNotice


class Announcer(Protocol):
    """Where a consumer announces the changes it committed (the live notifier)."""

    async def publish(self, notices: Sequence[ChangeNotice]) -> None:
        """Announce committed changes; never raises (subscribers can re-read read.changes)."""
        ...

    async def catch_up_everyone(self) -> bool:
        """Tell every subscriber that notices may have been lost; return whether that was sent."""
        ...


class ConsumerKind(enum.Enum):
    """What a consumer's batches write, which decides how durably they commit."""

    # Only a read model, re-derivable from the event store: a batch lost in a crash is applied again, so
    # its commit does not wait for the WAL flush.
    PROJECTION = "projection"
    # Source-of-truth state (events appended by commands, saga rows, scheduled messages, the mail
    # outbox): nothing could derive it again, so its commit waits for the WAL flush like any command's.
    PROCESS = "process"


class Consumer(Protocol):
    """One consumer group: applies events and keeps its checkpoint in its own transaction."""

    @property
    def name(self) -> str:
        """The consumer group's name; also its lease and dead-letter name."""
        ...

    @property
    def kind(self) -> ConsumerKind:
        """Whether its batches write a read model only (PROJECTION) or source-of-truth state (PROCESS)."""
        ...

    @property
    def handles(self) -> frozenset[str]:
        """The event types `apply` acts on; the runner moves the checkpoint past all others unapplied."""
        ...

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        """Return the checkpoint inside the batch transaction, locking its row."""
        ...

    async def begin_batch(self, conn: asyncpg.Connection, lease: Lease, end: Position) -> Position:
        """First in a batch transaction: fence `lease` (raise LeaseLost when gone), lock the checkpoint.

        Return the checkpoint, and move it forward to `end` in the same transaction, so that it commits
        (or rolls back) with the batch. The commit of a PROJECTION's batch does not wait for the WAL flush.
        """
        ...

    async def save_checkpoint(self, conn: asyncpg.Connection, position: Position) -> None:
        """Store the checkpoint inside the batch transaction."""
        ...

    async def advance_checkpoint(self, conn: asyncpg.Connection, position: Position, lease: Lease) -> bool:
        """Move the checkpoint forward to `position` in one statement; return whether `lease` is held."""
        ...

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Apply `events` (in commit order) inside the caller's transaction; never touch the checkpoint."""
        ...


def type_names(*classes: type[Event]) -> frozenset[str]:
    """Return the registered type names of event `classes`: what a consumer declares it handles."""
    names = {REGISTRY.get(name).cls: name for name in REGISTRY.names()}
    return frozenset(names[cls] for cls in classes)
