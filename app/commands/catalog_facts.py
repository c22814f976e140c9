"""What other contexts may know of books, folded from the catalog's published events.

Contexts share events, never aggregates: the basket and ordering handlers read a book's stream in
the event store when they decide and keep only what they need (exists, name, the price a buyer pays).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from app.commands.streams import Context
from app.events import catalog as ev
from app.events.base import Event


@dataclass(frozen=True, slots=True)
class BookFacts:
    book_id: str
    name: str
    unit_price: Decimal  # priceSale when set, else price
    available: bool  # created and not deleted


def fold_book(book_id: str, events: Iterable[Event]) -> BookFacts:
    """Fold a book's catalog events into the facts other contexts use."""
    facts = BookFacts(book_id, "", Decimal("0.00"), False)
    for event in events:
        if isinstance(event, ev.BookCreated | ev.BookUpdated):
            price = event.price_sale if event.price_sale is not None else event.price
            facts = BookFacts(book_id, event.name, price, True)
        elif isinstance(event, ev.BookDeleted):
            facts = BookFacts(book_id, facts.name, facts.unit_price, False)
    return facts


async def book_facts(ctx: Context, book_id: str) -> BookFacts:
    """Return what the event store says of book `book_id` now (unavailable when unknown or deleted)."""
    recorded = await ctx.store.read_stream(book_id, conn=ctx.conn)
    if recorded and recorded[0].stream_type != "Book":
        return BookFacts(book_id, "", Decimal("0.00"), False)
    return fold_book(book_id, (r.event for r in recorded))
