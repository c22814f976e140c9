"""PostgreSQL event store."""

from app.eventstore.errors import ConcurrencyError, EventStoreError, TargetChanged
from app.eventstore.position import START, InvalidPosition, Position
from app.eventstore.store import NOTIFY_CHANNEL, EventStore
from app.eventstore.types import UNDECODED, RecordedEvent, TypedPage

__all__ = [
    "NOTIFY_CHANNEL",
    "START",
    "UNDECODED",
    "ConcurrencyError",
    "EventStore",
    "EventStoreError",
    "InvalidPosition",
    "Position",
    "RecordedEvent",
    "TargetChanged",
    "TypedPage",
]
