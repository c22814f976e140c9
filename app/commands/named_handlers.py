"""Handlers shared by authors, categories and publishers: create, rename, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.commands import constraints
from app.commands.base import Command, CommandResult
from app.commands.streams import Context, Loaded, fold, load, save
from app.domain.catalog import named
from app.domain.errors import ConflictError
from app.events.base import Event


@dataclass(frozen=True, slots=True)
class Kind:
    """One named aggregate: its stream type, its pure functions, and the scope of unique names."""

    stream_type: str
    evolve: Callable[[named.State, Event], named.State]
    decide: Callable[[named.State, Any], list[Event]]
    name_scope: str | None  # None: names need not be unique


async def create_or_rename(ctx: Context, kind: Kind, entity_id: str, command: Command) -> CommandResult:
    loaded = await load(ctx, entity_id, kind.evolve, named.State())
    return await _save_name(ctx, kind, entity_id, loaded, kind.decide(loaded.state, command))


async def delete(ctx: Context, kind: Kind, entity_id: str, command: Command) -> CommandResult:
    await constraints.lock_target_exclusive(ctx.conn, entity_id)
    loaded = await load(ctx, entity_id, kind.evolve, named.State())
    events = kind.decide(loaded.state, command)
    if await constraints.is_referenced(ctx.conn, entity_id):
        raise ConflictError(
            f"{kind.stream_type} {entity_id} is still used by books; change or delete those books first."
        )
    if kind.name_scope is not None:
        await constraints.release(ctx.conn, kind.name_scope, entity_id)
    return CommandResult(entity_id, await save(ctx, entity_id, kind.stream_type, loaded, events))


async def _save_name(
    ctx: Context, kind: Kind, entity_id: str, loaded: Loaded[named.State], events: list[Event]
) -> CommandResult:
    """Save a create or rename, moving the name's reservation when names are unique."""
    # Append first: a concurrent writer of the same stream then waits on the version and fails with
    # ConcurrencyError before it touches the reservation rows.
    position = await save(ctx, entity_id, kind.stream_type, loaded, events)
    after = fold(kind.evolve, loaded.state, events)
    if kind.name_scope is not None and after.name.lower() != loaded.state.name.lower():
        await constraints.release(ctx.conn, kind.name_scope, entity_id)
        if not await constraints.reserve(ctx.conn, kind.name_scope, after.name.lower(), entity_id):
            raise ConflictError(f"A {kind.stream_type.lower()} named {after.name!r} already exists.")
    return CommandResult(entity_id, position)
