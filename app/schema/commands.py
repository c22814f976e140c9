"""Dispatch a command on behalf of the request's actor."""

from __future__ import annotations

from app.commands.results import CommandResult
from app.domain.commands import Command
from app.schema.context import Info


async def dispatch(info: Info, command: Command, idempotency_key: str | None = None) -> CommandResult:
    """Send `command` through the command bus as the current actor (which checks the key)."""
    context = info.context
    return await context.container.commands.dispatch(
        command, actor=context.actor, idempotency_key=idempotency_key
    )
