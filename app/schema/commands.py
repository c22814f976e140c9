"""Dispatch a command on behalf of the request's actor, with the boundary checks every mutation shares."""

from __future__ import annotations

from app.commands.results import CommandResult
from app.domain.commands import Command
from app.domain.errors import ValidationError
from app.schema.context import Info

MAX_IDEMPOTENCY_KEY = 200


async def dispatch(info: Info, command: Command, idempotency_key: str | None = None) -> CommandResult:
    """Send `command` through the command bus as the current actor."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError.single("idempotencyKey", f"Must be 1 to {MAX_IDEMPOTENCY_KEY} characters long.")
    context = info.context
    return await context.container.commands.dispatch(
        command, actor=context.actor, idempotency_key=idempotency_key
    )
