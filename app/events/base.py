"""The base of every domain event and the metadata that travels with it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Event:
    """A past-tense fact. Subclasses are frozen keyword-only dataclasses with no behaviour."""


@dataclass(frozen=True, kw_only=True)
class Metadata:
    """Who caused an event and why: stored beside every event."""

    actor: str
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "traceparent": self.traceparent,
        }
