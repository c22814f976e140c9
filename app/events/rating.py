"""Rating events: feedback on books (stream id = feedback id)."""

from __future__ import annotations

from dataclasses import dataclass

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("FeedbackCreated")
@dataclass(frozen=True, kw_only=True)
class FeedbackCreated(Event):
    feedback_id: str
    book_id: str
    first_name: str
    last_name: str
    comment: str | None
    rating: int


@REGISTRY.event("FeedbackDeleted")
@dataclass(frozen=True, kw_only=True)
class FeedbackDeleted(Event):
    """Feedback was removed: by an admin (`reason` None) or as compensation (the book does not exist)."""

    feedback_id: str
    book_id: str
    rating: int
    reason: str | None
