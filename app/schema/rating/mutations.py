"""Rating mutations: customers leave feedback, admins remove it."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id
from app.domain.rating.commands import CreateFeedback, DeleteFeedback
from app.ids import new_id
from app.schema import described
from app.schema.access import require_admin, require_customer
from app.schema.commands import dispatch
from app.schema.context import Info
from app.schema.rating import inputs, payloads


@strawberry.type
class RatingMutation:
    @described.mutation(
        "Rate a book (0 to 5) with an optional comment; one feedback per signed-in customer and book "
        "(a second is a Conflict). The first and last name are shown with it, normalised (NFKC, no "
        "invisible characters). Feedback on a book that does not exist is removed again shortly."
    )
    async def create_feedback(
        self, info: Info, input: inputs.CreateFeedbackInput
    ) -> payloads.CreateFeedbackResult:
        customer_id = require_customer(info).customer_id
        # The domain checks every field, the book id's form included, and reports them all at once.
        command = CreateFeedback(
            feedback_id=new_id(),
            book_id=str(input.book_id),
            customer_id=customer_id,
            first_name=input.first_name,
            last_name=input.last_name,
            comment=input.comment,
            rating=input.rating,
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CreateFeedbackSuccess.of(done)

    @described.mutation("Remove feedback. Admins only.")
    async def delete_feedback(
        self, info: Info, input: inputs.DeleteFeedbackInput
    ) -> payloads.DeleteFeedbackResult:
        require_admin(info)
        command = DeleteFeedback(feedback_id=check_id("feedbackId", input.feedback_id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.DeleteFeedbackSuccess.of(done)
