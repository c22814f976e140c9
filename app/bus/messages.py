"""Stream entries <-> recorded events: the fields the relay writes and the runner reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.bus.infra import text
from app.events import EventRegistry
from app.eventstore import Position, RecordedEvent


def encode(event: RecordedEvent, prev: Position) -> dict[str, str]:
    """Return the stream fields of `event`, which follows `prev` in commit order."""
    return {
        "position": str(event.position),
        "prev": str(prev),
        "type": event.event_type,
        "schema_version": str(event.schema_version),
        "stream_id": event.stream_id,
        "stream_type": event.stream_type,
        "version": str(event.stream_version),
        "event_id": event.event_id,
        "data": json.dumps(event.data),
        "metadata": json.dumps(event.metadata),
        "recorded_at": event.recorded_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Message:
    """One stream entry: its id, the position before it, and its raw fields."""

    message_id: str
    position: Position
    prev: Position
    fields: dict[str, str]

    @classmethod
    def parse(cls, message_id: Any, raw: Mapping[Any, Any]) -> Message:
        fields = {text(k): text(v) for k, v in raw.items()}
        return cls(
            text(message_id),
            Position.parse(fields["position"]),
            Position.parse(fields["prev"]),
            fields,
        )

    def recorded(self, registry: EventRegistry) -> RecordedEvent:
        """Rebuild the recorded event; raise UnknownEventType when no class answers to its type."""
        f = self.fields
        data: dict[str, Any] = json.loads(f["data"])
        return RecordedEvent(
            position=self.position,
            stream_id=f["stream_id"],
            stream_type=f["stream_type"],
            stream_version=int(f["version"]),
            event_id=f["event_id"],
            event_type=f["type"],
            schema_version=int(f["schema_version"]),
            data=data,
            metadata=json.loads(f["metadata"]),
            recorded_at=dt.datetime.fromisoformat(f["recorded_at"]),
            event=registry.decode(f["type"], int(f["schema_version"]), data),
        )
