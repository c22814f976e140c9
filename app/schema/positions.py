"""Position cursors at the API boundary: parse what clients send back, with a clear error."""

from __future__ import annotations

# The one schema-side import from the event-store package: Position is a value object (the cursor
# format), not access to the store.
from app.eventstore.position import InvalidPosition, Position


class BadCursor(ValueError):
    """A string a client sent as a position that Bookworm never handed out."""


def parse_cursor(raw: str) -> Position:
    """Parse a position cursor; raise BadCursor when it is malformed."""
    try:
        return Position.parse(raw)
    except InvalidPosition:
        raise BadCursor(f"not a position cursor: {raw[:40]!r}") from None


__all__ = ["BadCursor", "Position", "parse_cursor"]
