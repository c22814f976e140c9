"""The author aggregate: a name that is created, renamed and deleted."""

from __future__ import annotations

from app.domain.catalog import named
from app.domain.catalog.commands import CreateAuthor, DeleteAuthor, RenameAuthor
from app.events.base import Event
from app.events.catalog import AuthorCreated, AuthorDeleted, AuthorRenamed

LABEL = "Author"
State = named.State
Command = CreateAuthor | RenameAuthor | DeleteAuthor


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, AuthorCreated):
        return named.created(state, event.author_id, event.name)
    if isinstance(event, AuthorRenamed):
        return named.renamed(state, event.name)
    if isinstance(event, AuthorDeleted):
        return named.deleted(state)
    return state


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, CreateAuthor):
        name = named.decide_create(state, LABEL, command.author_id, command.name)
        return [AuthorCreated(author_id=command.author_id, name=name)]
    if isinstance(command, RenameAuthor):
        new_name = named.decide_rename(state, LABEL, command.author_id, command.name)
        if new_name is None:
            return []
        return [AuthorRenamed(author_id=command.author_id, name=new_name)]
    named.decide_delete(state, LABEL, command.author_id)
    return [AuthorDeleted(author_id=command.author_id)]
