"""What the event store hands back: an event as recorded, with its position."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.events.base import Event
from app.eventstore.position import Position


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedEvent:
    position: Position
    stream_id: str
    stream_type: str
    stream_version: int
    event_id: str
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: dt.datetime
    event: Event


# Stands in for the decoded event when a reader asked for raw rows only (decode=False).
UNDECODED = Event()


@dataclass(frozen=True, slots=True)
class TypedPage:
    """A page of commit order read for some event types: those events, and how far the page reached."""

    events: list[RecordedEvent]  # the events of the types asked for, decoded
    end: Position  # the page's last event, of any type (`after` for an empty page)
    read: int  # the events the page spans, of any type
