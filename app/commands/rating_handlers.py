"""Handlers of the rating commands: load, decide, keep one feedback per customer and book, append."""

from __future__ import annotations

from app.commands import constraints
from app.commands.base import Command, CommandResult
from app.commands.rating import CreateFeedback, DeleteFeedback
from app.commands.streams import Context, Handler, fold, load, save
from app.domain.errors import ConflictError
from app.domain.rating import feedback

FEEDBACK = "Feedback"
REVIEWER_SCOPE = "feedback-reviewer"


async def create_feedback(ctx: Context, command: CreateFeedback) -> CommandResult:
    loaded = await load(ctx, command.feedback_id, feedback.evolve, feedback.State())
    events = feedback.decide(loaded.state, command)
    # Append first: a concurrent writer of the same stream then fails on the stream version before
    # it touches the reservation.
    position = await save(ctx, command.feedback_id, FEEDBACK, loaded, events)
    after = fold(feedback.evolve, loaded.state, events)
    reviewer = feedback.reviewer_key(after)
    if not await constraints.reserve(ctx.conn, REVIEWER_SCOPE, reviewer, command.feedback_id):
        raise ConflictError(
            "You have already reviewed this book; a customer leaves one review per book "
            "(an admin may remove the old one)."
        )
    return CommandResult(command.feedback_id, position)


async def delete_feedback(ctx: Context, command: DeleteFeedback) -> CommandResult:
    loaded = await load(ctx, command.feedback_id, feedback.evolve, feedback.State())
    events = feedback.decide(loaded.state, command)
    position = await save(ctx, command.feedback_id, FEEDBACK, loaded, events)
    if events:
        await constraints.release(ctx.conn, REVIEWER_SCOPE, command.feedback_id)
    return CommandResult(command.feedback_id, position)


HANDLERS: dict[type[Command], Handler] = {
    CreateFeedback: create_feedback,
    DeleteFeedback: delete_feedback,
}
