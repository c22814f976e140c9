"""The port a consumer group implements, and what the runner hands to `publish`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg

from app.eventstore import Position, RecordedEvent
from app.live.notices import ChangeNotice

Publish = Callable[[list[ChangeNotice]], Awaitable[None]]


class Consumer(Protocol):
    """One consumer group: applies events and keeps its checkpoint in its own transaction."""

    @property
    def name(self) -> str:
        """The consumer group's name; also its lease and dead-letter name."""
        ...

    async def load_checkpoint(self, conn: asyncpg.Connection) -> Position:
        """Return the checkpoint inside the batch transaction, locking its row."""
        ...

    async def save_checkpoint(self, conn: asyncpg.Connection, position: Position) -> None:
        """Store the checkpoint inside the batch transaction."""
        ...

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Apply `events` (in commit order) inside the caller's transaction; never touch the checkpoint."""
        ...
