"""The feedback check: feedback on a book that does not exist is removed again, by an event.

The rating context does not own books, so createFeedback cannot check the book in its transaction.
This process reads the book's catalog events after the fact and compensates with DeleteFeedback,
dispatched inside its own batch transaction: the deletion commits with the checkpoint or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from app.bus.checkpoints import OwnCheckpoint
from app.bus.protocol import type_names
from app.commands.bus import CommandBus
from app.commands.catalog_facts import book_facts
from app.commands.streams import Context
from app.domain.commands import Command, Emits
from app.domain.rating.commands import DeleteFeedback
from app.events.base import Metadata
from app.events.rating import FeedbackCreated
from app.eventstore import EventStore, RecordedEvent
from app.live.notices import ChangeNotice

NAME = "feedback-check"
ACTOR = "system:feedback-check"
NO_SUCH_BOOK = "The book does not exist."


class FeedbackCheck(OwnCheckpoint):
    """Consumer group `feedback-check`: compensates feedback whose book is unknown or deleted."""

    name = NAME
    handles = type_names(FeedbackCreated)
    sends: tuple[type[Command], ...] = (DeleteFeedback,)
    emits: Emits = ()

    def __init__(self, commands: CommandBus, event_store: EventStore) -> None:
        self._commands = commands
        self._store = event_store

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Check the book of every new feedback; remove the feedback when the book does not exist."""
        for recorded in events:
            if isinstance(recorded.event, FeedbackCreated):
                await self._check(conn, recorded, recorded.event)
        return []

    async def _check(self, conn: asyncpg.Connection, recorded: RecordedEvent, event: FeedbackCreated) -> None:
        correlation_id = recorded.metadata.get("correlation_id") or recorded.event_id
        metadata = Metadata(actor=ACTOR, correlation_id=correlation_id, causation_id=recorded.event_id)
        facts = await book_facts(Context(conn, self._store, metadata), event.book_id)
        if facts.available:
            return
        # A redelivered or repeated compensation finds the feedback deleted and appends nothing.
        await self._commands.dispatch(
            DeleteFeedback(feedback_id=event.feedback_id, reason=NO_SUCH_BOOK),
            actor=ACTOR,
            correlation_id=correlation_id,
            causation_id=recorded.event_id,
            conn=conn,
        )
