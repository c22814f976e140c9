"""What ordering reads from a basket's published events: its lines, folded here, not by the basket domain.

Contexts share events only, so ordering keeps its own small fold: book id -> quantity, in the order
the books were first put in the basket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.events import basket as ev
from app.events.base import Event


@dataclass(frozen=True, slots=True)
class BasketLine:
    book_id: str
    quantity: int


def fold_lines(events: Iterable[Event]) -> tuple[BasketLine, ...]:
    """Fold a basket's events into its current lines (a checkout takes what it names, a clear all)."""
    lines: dict[str, int] = {}
    for event in events:
        if isinstance(event, ev.BasketItemAdded | ev.BasketItemQuantityChanged):
            _set(lines, event.book_id, event.quantity)
        elif isinstance(event, ev.BasketItemRemoved):
            lines.pop(event.book_id, None)
        elif isinstance(event, ev.BasketCheckedOut) and event.lines:
            for taken in event.lines:
                _set(lines, taken.book_id, lines.get(taken.book_id, 0) - taken.quantity)
        elif isinstance(event, ev.BasketCleared | ev.BasketCheckedOut):
            lines.clear()  # a v1 checkout names no lines: it took them all
    return tuple(BasketLine(book_id, quantity) for book_id, quantity in lines.items())


def _set(lines: dict[str, int], book_id: str, quantity: int) -> None:
    # Both events carry the line's quantity after the change; nothing left means no line.
    if quantity > 0:
        lines[book_id] = quantity
    else:
        lines.pop(book_id, None)
