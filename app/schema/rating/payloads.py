"""Rating mutation results: `<Verb>FeedbackSuccess` plus the typed errors, as one union per mutation.

Each success payload's `feedback` field is read-your-writes: it waits until the rating read model has
passed the mutation's position, then loads the row.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import strawberry

from app.schema import described
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.payloads import Changed
from app.schema.rating.types import Feedback, feedback_now

PROJECTION = "rating"
RYW = "The feedback as the read model holds it once it has applied this change (waits, bounded)."


@strawberry.type
class FeedbackPayload(Changed):
    ID_FIELD: ClassVar[str] = "feedback_id"
    feedback_id: strawberry.ID

    @described.field(RYW)
    async def feedback(self, info: Info) -> Feedback | None:
        await caught_up(info, self.at, projection=PROJECTION)
        return await feedback_now(info, str(self.feedback_id))


# The payload base is not in the schema itself; each mutation has its own success type.
@strawberry.type
class CreateFeedbackSuccess(FeedbackPayload):
    pass


@strawberry.type
class DeleteFeedbackSuccess(FeedbackPayload):
    pass


CreateFeedbackResult = Annotated[CreateFeedbackSuccess | Errors, strawberry.union("CreateFeedbackResult")]
DeleteFeedbackResult = Annotated[DeleteFeedbackSuccess | Errors, strawberry.union("DeleteFeedbackResult")]
