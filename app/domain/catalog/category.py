"""The category aggregate: a name that is created, renamed and deleted."""

from __future__ import annotations

from app.domain.catalog import named
from app.domain.catalog.commands import CreateCategory, DeleteCategory, RenameCategory
from app.events.base import Event
from app.events.catalog import CategoryCreated, CategoryDeleted, CategoryRenamed

LABEL = "Category"
State = named.State
Command = CreateCategory | RenameCategory | DeleteCategory


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, CategoryCreated):
        return named.created(state, event.category_id, event.name)
    if isinstance(event, CategoryRenamed):
        return named.renamed(state, event.name)
    if isinstance(event, CategoryDeleted):
        return named.deleted(state)
    return state


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, CreateCategory):
        name = named.decide_create(state, LABEL, command.category_id, command.name)
        return [CategoryCreated(category_id=command.category_id, name=name)]
    if isinstance(command, RenameCategory):
        new_name = named.decide_rename(state, LABEL, command.category_id, command.name)
        if new_name is None:
            return []
        return [CategoryRenamed(category_id=command.category_id, name=new_name)]
    named.decide_delete(state, LABEL, command.category_id)
    return [CategoryDeleted(category_id=command.category_id)]
