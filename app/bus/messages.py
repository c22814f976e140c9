"""Stream entries <-> recorded events: the fields the relay writes and the runner reads."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.bus.infra import text
from app.events import EventRegistry
from app.eventstore import Position, RecordedEvent

# Every consumer group reads every entry, and an entry's `prev` is the entry before's `position`: each
# cursor string of the stream is parsed about sixteen times in a worker process. A position is immutable,
# so one parse serves them all (the newest few thousand strings are kept).
_position = functools.lru_cache(maxsize=4096)(Position.parse)


def encode(event: RecordedEvent, prev: Position) -> dict[str, str]:
    """Return the stream fields of `event`, which follows `prev` in commit order.

    What a consumer reads of every entry (where it is, the type it may ignore, what a dead letter names)
    has a field each; the rest is one JSON field, decoded only by a consumer that applies the event. Every
    consumer group reads every entry, so each field less is parsed eight times less.
    """
    rest = [
        event.schema_version,
        event.stream_type,
        event.stream_version,
        event.data,
        event.metadata,
        event.recorded_at.isoformat(),
    ]
    return {
        "position": str(event.position),
        "prev": str(prev),
        "type": event.event_type,
        "event_id": event.event_id,
        "stream_id": event.stream_id,
        "event": json.dumps(rest),
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
            _position(fields["position"]),
            _position(fields["prev"]),
            fields,
        )

    def recorded(self, registry: EventRegistry) -> RecordedEvent:
        """Rebuild the recorded event; raise UnknownEventType when no class answers to its type."""
        f = self.fields
        packed = json.loads(f["event"]) if "event" in f else _unpacked(f)
        schema_version, stream_type, version, data, metadata, recorded_at = packed
        return RecordedEvent(
            position=self.position,
            stream_id=f["stream_id"],
            stream_type=stream_type,
            stream_version=int(version),
            event_id=f["event_id"],
            event_type=f["type"],
            schema_version=int(schema_version),
            data=data,
            metadata=metadata,
            recorded_at=dt.datetime.fromisoformat(recorded_at),
            event=registry.decode(f["type"], int(schema_version), data),
        )


def _unpacked(f: Mapping[str, str]) -> list[Any]:
    """The packed field's values from an entry of a relay from before it: a field each."""
    data, metadata = json.loads(f["data"]), json.loads(f["metadata"])
    return [f["schema_version"], f["stream_type"], f["version"], data, metadata, f["recorded_at"]]
