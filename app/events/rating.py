"""Rating events: feedback on books (stream id = feedback id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("FeedbackCreated", version=2)
@dataclass(frozen=True, kw_only=True)
class FeedbackCreated(Event):
    """A customer reviewed a book; the names are display fields, `customer_id` is who wrote it."""

    feedback_id: str
    book_id: str
    customer_id: str | None
    first_name: str
    last_name: str
    comment: str | None
    rating: int


@REGISTRY.upcaster("FeedbackCreated", from_version=1)
def _feedback_created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 had no author: its feedback was keyed on the names, so `customer_id` is None (unknown)."""
    data.setdefault("customer_id", None)
    return data


@REGISTRY.event("FeedbackDeleted")
@dataclass(frozen=True, kw_only=True)
class FeedbackDeleted(Event):
    """Feedback was removed: by an admin (`reason` None) or as compensation (the book does not exist)."""

    feedback_id: str
    book_id: str
    rating: int
    reason: str | None
