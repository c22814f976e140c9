"""What ordering reads from a basket's published events: its lines, folded here, not by the basket domain.

Contexts share events only, so ordering keeps its own small fold: book id -> quantity, in the order
the books were first put in the basket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.domain import snapshots
from app.events import basket as ev
from app.events.base import Event

# The shape `snapshot` writes; change it whenever the lines change shape, so older snapshots are ignored.
SNAPSHOT_VERSION = 1
MAX_QUANTITY = 99  # what a basket line may hold (the basket's own rule, restated for reading snapshots)


@dataclass(frozen=True, slots=True)
class BasketLine:
    book_id: str
    quantity: int


Lines = tuple[BasketLine, ...]


def evolve(lines: Lines, event: Event) -> Lines:
    """Fold one basket event into the lines (a checkout takes what it names, a clear all)."""
    held = {line.book_id: line.quantity for line in lines}
    if isinstance(event, ev.BasketItemAdded | ev.BasketItemQuantityChanged):
        _set(held, event.book_id, event.quantity)
    elif isinstance(event, ev.BasketItemRemoved):
        held.pop(event.book_id, None)
    elif isinstance(event, ev.BasketCheckedOut) and event.lines:
        for taken in event.lines:
            _set(held, taken.book_id, held.get(taken.book_id, 0) - taken.quantity)
    elif isinstance(event, ev.BasketCleared | ev.BasketCheckedOut):
        held.clear()  # a v1 checkout names no lines: it took them all
    else:
        return lines
    return tuple(BasketLine(book_id, quantity) for book_id, quantity in held.items())


def fold_lines(events: Iterable[Event]) -> Lines:
    """Fold a basket's events into its current lines."""
    lines: Lines = ()
    for event in events:
        lines = evolve(lines, event)
    return lines


def _set(lines: dict[str, int], book_id: str, quantity: int) -> None:
    # Both events carry the line's quantity after the change; nothing left means no line.
    if quantity > 0:
        lines[book_id] = quantity
    else:
        lines.pop(book_id, None)


def snapshot(lines: Lines) -> dict[str, Any]:
    """Return the lines as JSON data, in order."""
    return {"lines": [[line.book_id, line.quantity] for line in lines]}


def from_snapshot(data: object) -> Lines:
    """Return the lines `snapshot` wrote; raise ValueError for any other data."""
    found = snapshots.fields(data, "lines")
    return tuple(BasketLine(b, q) for b, q in snapshots.quantities(found["lines"], MAX_QUANTITY).items())
