"""Rating commands: feedback on books."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from app.domain.commands import Command, Emits
from app.events.rating import FeedbackCreated, FeedbackDeleted


@dataclass(frozen=True, kw_only=True)
class CreateFeedback(Command):
    emits: ClassVar[Emits] = (FeedbackCreated,)
    minted: ClassVar[tuple[str, ...]] = ("feedback_id",)
    feedback_id: str
    book_id: str
    customer_id: str
    first_name: str
    last_name: str
    comment: str | None
    rating: int


@dataclass(frozen=True, kw_only=True)
class DeleteFeedback(Command):
    """Remove feedback: by an admin (`reason` None), or as compensation when its book does not exist."""

    emits: ClassVar[Emits] = (FeedbackDeleted,)
    feedback_id: str
    reason: str | None = None
