"""Rating output types: feedback, its list order, and its change notices."""

from __future__ import annotations

import datetime as dt
import enum

import strawberry

from app.queries.rating import FeedbackRow
from app.schema import described
from app.schema.catalog.types import ChangeKind
from app.schema.context import Info


@strawberry.enum
class FeedbackOrderBy(enum.Enum):
    NEWEST = strawberry.enum_value("NEWEST", description="Newest first.")
    RATING = strawberry.enum_value("RATING", description="Highest rating first; newest first among equals.")


@strawberry.type
class Feedback:
    id: strawberry.ID
    book_id: strawberry.ID
    first_name: str
    last_name: str
    comment: str | None
    rating: int
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: FeedbackRow) -> Feedback:
        return cls(
            id=strawberry.ID(row.id),
            book_id=strawberry.ID(row.book_id),
            first_name=row.first_name,
            last_name=row.last_name,
            comment=row.comment,
            rating=row.rating,
            created_at=row.created_at,
        )


async def feedback_now(info: Info, feedback_id: str) -> Feedback | None:
    """Return the feedback as the read model holds it now; None once deleted."""
    (row,) = await info.context.container.rating.feedbacks_by_ids([feedback_id])
    return None if row is None else Feedback.from_row(row)


@strawberry.type
class FeedbackChange:
    kind: ChangeKind
    position: str
    feedback_id: strawberry.ID
    book_id: strawberry.ID

    @described.field("The feedback as the read model holds it now; null once deleted.")
    async def feedback(self, info: Info) -> Feedback | None:
        return await feedback_now(info, str(self.feedback_id))
