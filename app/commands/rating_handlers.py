"""Handlers of the rating commands: load, decide, record the append and one feedback per customer and book."""

from __future__ import annotations

from app.commands import constraints
from app.commands.streams import Context, Handler, fold, load, save
from app.domain.commands import Command
from app.domain.rating import feedback
from app.domain.rating.commands import CreateFeedback, DeleteFeedback

FEEDBACK = "Feedback"
REVIEWER_SCOPE = "feedback-reviewer"
REVIEWED = (
    "You have already reviewed this book; a customer leaves one review per book "
    "(an admin may remove the old one)."
)


async def create_feedback(ctx: Context, command: CreateFeedback) -> str:
    loaded = await load(ctx, command.feedback_id, feedback.evolve, feedback.State())
    events = feedback.decide(loaded.state, command)
    # Append first: a concurrent writer of the same stream then fails on the stream version before
    # it touches the reservation.
    save(ctx, command.feedback_id, FEEDBACK, loaded, events)
    reviewer = feedback.reviewer_key(fold(feedback.evolve, loaded.state, events))
    ctx.writes.add(constraints.Reserve(REVIEWER_SCOPE, reviewer, command.feedback_id, REVIEWED))
    return command.feedback_id


async def delete_feedback(ctx: Context, command: DeleteFeedback) -> str:
    loaded = await load(ctx, command.feedback_id, feedback.evolve, feedback.State())
    events = feedback.decide(loaded.state, command)
    save(ctx, command.feedback_id, FEEDBACK, loaded, events)
    if events:
        ctx.writes.add(constraints.Release(REVIEWER_SCOPE, command.feedback_id))
    return command.feedback_id


HANDLERS: dict[type[Command], Handler] = {
    CreateFeedback: create_feedback,
    DeleteFeedback: delete_feedback,
}
