"""What the command bus answers for a command it ran."""

from __future__ import annotations

from dataclasses import dataclass

from app.eventstore.position import Position


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The entity a command acted on and the position of its last event."""

    entity_id: str
    position: Position
