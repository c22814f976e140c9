"""Rating mutation inputs."""

from __future__ import annotations

import strawberry


@strawberry.input
class CreateFeedbackInput:
    book_id: strawberry.ID
    first_name: str
    last_name: str
    comment: str | None = None
    rating: int
    idempotency_key: str | None = None


@strawberry.input
class DeleteFeedbackInput:
    feedback_id: strawberry.ID
    idempotency_key: str | None = None
