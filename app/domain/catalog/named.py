"""What authors, categories and publishers share: a name that is created, renamed and deleted."""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.domain.catalog import rules
from app.domain.errors import ConflictError, NotFoundError


@dataclass(frozen=True, kw_only=True)
class State:
    id: str | None = None
    name: str = ""
    deleted: bool = False
    version: int = 0

    @property
    def exists(self) -> bool:
        return self.id is not None and not self.deleted


NEW = State()  # a stream with no events yet: one instance serves every load (a State is never changed)


def created(state: State, entity_id: str, name: str) -> State:
    return State(id=entity_id, name=name, version=state.version + 1)


def renamed(state: State, name: str) -> State:
    return replace(state, name=name, version=state.version + 1)


def deleted(state: State) -> State:
    return replace(state, deleted=True, version=state.version + 1)


def require_live(state: State, label: str, entity_id: str) -> None:
    """Refuse to act on an entity that was never created or is deleted."""
    if not state.exists:
        raise NotFoundError(f"No {label.lower()} with id {rules.short(entity_id)}.")


def decide_create(state: State, label: str, entity_id: str, name: str) -> str:
    """Validate a new entity; return its trimmed name."""
    errors: rules.Errors = []
    rules.entity_id(entity_id, errors, "id")
    cleaned = rules.name(name, errors)
    rules.raise_if_any(errors)
    if state.id is not None:
        raise ConflictError(f"{label} {entity_id} already exists.")
    return cleaned


def decide_rename(state: State, label: str, entity_id: str, name: str) -> str | None:
    """Validate a rename; return the trimmed new name, or None when the name does not change."""
    require_live(state, label, entity_id)
    errors: rules.Errors = []
    cleaned = rules.name(name, errors)
    rules.raise_if_any(errors)
    return None if cleaned == state.name else cleaned


def decide_delete(state: State, label: str, entity_id: str) -> None:
    require_live(state, label, entity_id)
