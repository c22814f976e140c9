"""Rating subscriptions: a book's feedback as it is added (and removed), with resume by `after`."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.domain.fields import check_id
from app.live.notices import feedback_topic
from app.schema import described
from app.schema.catalog.types import ChangeKind
from app.schema.context import Info
from app.schema.positions import Position
from app.schema.rating.types import FeedbackChange
from app.schema.subscriptions import notices, resume_position


async def feedback_changes(
    info: Info, book_id: str, after: Position | None
) -> AsyncGenerator[FeedbackChange, None]:
    async for notice in notices(info, feedback_topic(book_id), after):
        yield FeedbackChange(
            kind=ChangeKind(notice.kind),
            position=str(notice.position),
            feedback_id=strawberry.ID(notice.entity_id),
            book_id=strawberry.ID(book_id),
        )


@strawberry.type
class RatingSubscription:
    # A plain async resolver that returns the generator: bad arguments fail before the stream starts.
    @described.subscription(
        "Feedback added to a book (kind CREATED), and feedback removed (kind DELETED, by an admin or "
        "because the book does not exist); `after` replays what was missed first."
    )
    async def feedback_added(
        self, info: Info, book_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[FeedbackChange, None]:
        book = check_id("bookId", book_id)
        return feedback_changes(info, book, await resume_position(info, after))
