"""The feedback aggregate: one reader's rating and comment on one book (stream id = feedback id)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.domain.errors import ConflictError, NotFoundError
from app.domain.rating import rules
from app.domain.rating.commands import CreateFeedback, DeleteFeedback
from app.events.base import Event
from app.events.rating import FeedbackCreated, FeedbackDeleted

LABEL = "Feedback"
Command = CreateFeedback | DeleteFeedback


@dataclass(frozen=True, kw_only=True)
class State:
    id: str | None = None
    book_id: str = ""
    customer_id: str | None = None
    first_name: str = ""
    last_name: str = ""
    rating: int = 0
    deleted: bool = False
    version: int = 0

    @property
    def exists(self) -> bool:
        return self.id is not None and not self.deleted


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, FeedbackCreated):
        return State(
            id=event.feedback_id,
            book_id=event.book_id,
            customer_id=event.customer_id,
            first_name=event.first_name,
            last_name=event.last_name,
            rating=event.rating,
            version=state.version + 1,
        )
    if isinstance(event, FeedbackDeleted):
        return replace(state, deleted=True, version=state.version + 1)
    return state


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, CreateFeedback):
        return [_create(state, command)]
    return _delete(state, command)


def _create(state: State, c: CreateFeedback) -> FeedbackCreated:
    errors: rules.Errors = []
    rules.entity_id(c.feedback_id, errors, "id")
    event = FeedbackCreated(
        feedback_id=c.feedback_id,
        book_id=rules.entity_id(c.book_id, errors, "bookId").lower(),
        customer_id=c.customer_id,
        first_name=rules.person_name(c.first_name, errors, "firstName"),
        last_name=rules.person_name(c.last_name, errors, "lastName"),
        comment=rules.comment(c.comment, errors),
        rating=rules.rating(c.rating, errors),
    )
    rules.raise_if_any(errors)
    if state.id is not None:
        raise ConflictError(f"Feedback {c.feedback_id} already exists.")
    return event


def _delete(state: State, c: DeleteFeedback) -> list[Event]:
    if state.id is not None and state.deleted and c.reason is not None:
        # A compensation may be delivered again, or race an admin's delete: what is gone stays gone.
        return []
    if not state.exists:
        raise NotFoundError(f"No feedback with id {rules.short(c.feedback_id)}.")
    book_id, rating = state.book_id, state.rating
    return [FeedbackDeleted(feedback_id=c.feedback_id, book_id=book_id, rating=rating, reason=c.reason)]


def reviewer_key(state: State) -> str:
    """Return the reservation value that keeps one feedback per customer and book."""
    if state.customer_id is None:
        # Feedback from before reviews had an author (v1 events) was reserved under its names.
        return rules.legacy_reviewer_key(state.book_id, state.first_name, state.last_name)
    return rules.reviewer_key(state.book_id, state.customer_id)
