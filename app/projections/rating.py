"""The rating projection: every book's feedback, listed newest first or by rating.

Updates are guarded by the feedback stream's version (`version < $n`), so re-applying an event is a
no-op and announces nothing; the runner already skips events at or below the checkpoint.
"""

from __future__ import annotations

import asyncpg

from app.bus.protocol import type_names
from app.events.rating import FeedbackCreated, FeedbackDeleted
from app.eventstore.types import RecordedEvent
from app.live.notices import ChangeNotice, feedback_topic
from app.projections import rating_tables
from app.projections.base import Statement, announces, apply_keyed

ENTITY = "Feedback"
CREATED, DELETED = "CREATED", "DELETED"

_INSERT = """
INSERT INTO read.{p}feedbacks
    (id, book_id, first_name, last_name, comment, rating, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (id) DO NOTHING RETURNING id"""

_DELETE = """
UPDATE read.{p}feedbacks SET deleted = true, version = $2, updated_at = $3
WHERE id = $1 AND version < $2 RETURNING id"""


def _notice(recorded: RecordedEvent, kind: str, book_id: str, feedback_id: str) -> list[ChangeNotice]:
    return [
        ChangeNotice(
            position=recorded.position,
            topic=feedback_topic(book_id),
            kind=kind,
            entity=ENTITY,
            entity_id=feedback_id,
        )
    ]


def _statement(r: RecordedEvent, p: str) -> Statement | None:
    e = r.event
    if isinstance(e, FeedbackCreated):
        args = (e.feedback_id, e.book_id, e.first_name, e.last_name, e.comment, e.rating)
        return Statement(
            _INSERT.format(p=p), (*args, r.stream_version, r.recorded_at), e.feedback_id, keyed=True
        )
    if isinstance(e, FeedbackDeleted):
        deleted = (e.feedback_id, r.stream_version, r.recorded_at)
        return Statement(_DELETE.format(p=p), deleted, e.feedback_id, keyed=True)
    return None


class RatingProjection:
    """Feedback per book, for the `feedbacks` listing and the `feedbackAdded` subscription."""

    name = "rating"
    version = 1
    handles = type_names(FeedbackCreated, FeedbackDeleted)
    topics = announces(dict.fromkeys((FeedbackCreated, FeedbackDeleted), (feedback_topic,)))

    def ddl(self, prefix: str) -> list[str]:
        return rating_tables.ddl(prefix)

    def deferred_ddl(self, prefix: str) -> list[str]:
        return []

    def view_ddl(self, prefix: str) -> list[str]:
        return rating_tables.view_ddl(prefix)

    def drop_ddl(self, prefix: str) -> list[str]:
        return rating_tables.drop_ddl(prefix)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str) -> list[ChangeNotice]:
        """Apply one event to `prefix`'s tables; events of other contexts change nothing."""
        return await apply_keyed(conn, self, event, prefix)

    def statement(self, event: RecordedEvent, prefix: str) -> Statement | None:
        return _statement(event, prefix)

    async def announce(
        self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str, row: asyncpg.Record | None
    ) -> list[ChangeNotice]:
        e = event.event
        if row is None or not isinstance(e, FeedbackCreated | FeedbackDeleted):
            return []
        return _notice(
            event, CREATED if isinstance(e, FeedbackCreated) else DELETED, e.book_id, e.feedback_id
        )


RATING = RatingProjection()
