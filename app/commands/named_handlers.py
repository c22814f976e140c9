"""Handlers shared by authors, categories and publishers: create, rename, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.commands import constraints
from app.commands.streams import Context, fold, load, save
from app.domain.catalog import named
from app.domain.commands import Command
from app.events.base import Event


@dataclass(frozen=True, slots=True)
class Kind:
    """One named aggregate: its stream type, its pure functions, and the scope of unique names."""

    stream_type: str
    evolve: Callable[[named.State, Event], named.State]
    decide: Callable[[named.State, Any], list[Event]]
    name_scope: str | None  # None: names need not be unique


async def create_or_rename(ctx: Context, kind: Kind, entity_id: str, command: Command) -> str:
    loaded = await load(ctx, entity_id, kind.evolve, named.NEW)
    events = kind.decide(loaded.state, command)
    # Append first: a concurrent writer of the same stream then waits on the version and fails with
    # ConcurrencyError before it touches the reservation rows.
    save(ctx, entity_id, kind.stream_type, loaded, events)
    after = fold(kind.evolve, loaded.state, events)
    if kind.name_scope is not None and after.name.lower() != loaded.state.name.lower():
        ctx.writes.add(constraints.Release(kind.name_scope, entity_id))
        taken = f"A {kind.stream_type.lower()} named {after.name!r} already exists."
        ctx.writes.add(constraints.Reserve(kind.name_scope, after.name.lower(), entity_id, taken))
    return entity_id


async def delete(ctx: Context, kind: Kind, entity_id: str, command: Command) -> str:
    loaded = await load(ctx, entity_id, kind.evolve, named.NEW)
    events = kind.decide(loaded.state, command)
    used = f"{kind.stream_type} {entity_id} is still used by books; change or delete those books first."
    ctx.writes.add(constraints.RequireUnreferenced(entity_id, used))
    if kind.name_scope is not None:
        ctx.writes.add(constraints.Release(kind.name_scope, entity_id))
    save(ctx, entity_id, kind.stream_type, loaded, events)
    return entity_id
