"""Rating queries: a book's feedback, open to anyone."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id
from app.queries.rating import FeedbackOrder
from app.schema import described
from app.schema.connections import Connection, page_connection, page_size
from app.schema.context import Info
from app.schema.rating.types import Feedback, FeedbackOrderBy


@strawberry.type
class RatingQuery:
    @described.field("A book's feedback, newest first or by rating; an unknown book has none.")
    async def feedbacks(
        self,
        info: Info,
        book_id: strawberry.ID,
        first: int | None = 20,
        after: str | None = None,
        order_by: FeedbackOrderBy | None = FeedbackOrderBy.NEWEST,
    ) -> Connection[Feedback]:
        page = await info.context.container.rating.list_feedbacks(
            check_id("bookId", book_id),
            first=page_size(first, 20),
            after=after,
            order_by=FeedbackOrder[(order_by or FeedbackOrderBy.NEWEST).name],
        )
        return page_connection(page, Feedback.from_row)
