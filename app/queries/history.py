"""The audit trail: one stream's events as recorded."""

from __future__ import annotations

from app.db import unavailable_when_down
from app.eventstore import EventStore, RecordedEvent


@unavailable_when_down
async def stream_history(event_store: EventStore, stream_id: str) -> list[RecordedEvent]:
    """Return every event of one stream in version order (empty for an unknown stream)."""
    return await event_store.read_stream(stream_id)


__all__ = ["RecordedEvent", "stream_history"]
