"""Event dataclasses per context, the registry, and upcasters.

Importing a context's module registers its events: a new context's module is imported here.
"""

from app.events import basket as basket
from app.events import catalog as catalog
from app.events import finance as finance
from app.events import ordering as ordering
from app.events import rating as rating
from app.events.base import Event, Metadata
from app.events.registry import REGISTRY, EventRegistry, UnknownEventType

__all__ = ["REGISTRY", "Event", "EventRegistry", "Metadata", "UnknownEventType"]
