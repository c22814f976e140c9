"""The publisher aggregate: a name that is created, renamed and deleted."""

from __future__ import annotations

from app.domain.catalog import named
from app.domain.catalog.commands import CreatePublisher, DeletePublisher, RenamePublisher
from app.events.base import Event
from app.events.catalog import PublisherCreated, PublisherDeleted, PublisherRenamed

LABEL = "Publisher"
State = named.State
Command = CreatePublisher | RenamePublisher | DeletePublisher


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, PublisherCreated):
        return named.created(state, event.publisher_id, event.name)
    if isinstance(event, PublisherRenamed):
        return named.renamed(state, event.name)
    if isinstance(event, PublisherDeleted):
        return named.deleted(state)
    return state


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, CreatePublisher):
        name = named.decide_create(state, LABEL, command.publisher_id, command.name)
        return [PublisherCreated(publisher_id=command.publisher_id, name=name)]
    if isinstance(command, RenamePublisher):
        new_name = named.decide_rename(state, LABEL, command.publisher_id, command.name)
        if new_name is None:
            return []
        return [PublisherRenamed(publisher_id=command.publisher_id, name=new_name)]
    named.decide_delete(state, LABEL, command.publisher_id)
    return [PublisherDeleted(publisher_id=command.publisher_id)]
