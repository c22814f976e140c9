"""Basket reads over read.basket_view and read.basket_line_view: a customer's own basket only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from app.db import unavailable_when_down
from app.ids import basket_id_of

ZERO = Decimal("0.00")
_BASKET = "SELECT id, version, updated_at, total_price FROM read.basket_view WHERE customer_id = $1"
_LINES = """
SELECT book_id, book_name, quantity, unit_price, line_total, available
FROM read.basket_line_view WHERE customer_id = $1 ORDER BY seq"""


@dataclass(frozen=True, slots=True, kw_only=True)
class BasketLineRow:
    book_id: str
    name: str  # the book's name as the basket projection last saw it
    quantity: int
    unit_price: Decimal  # priceSale when set, else price; the last known one once the book is deleted
    line_total: Decimal  # quantity x unit_price
    available: bool  # False once the catalog deleted the book: the line does not count in the total

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> BasketLineRow:
        return cls(
            book_id=str(r["book_id"]),
            name=r["book_name"],
            quantity=r["quantity"],
            unit_price=r["unit_price"],
            line_total=r["line_total"],
            available=r["available"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BasketRow:
    id: str
    customer_id: str
    lines: tuple[BasketLineRow, ...]  # in the order first added
    total_price: Decimal  # of the available lines
    version: int  # events in the basket's stream; 0 for a basket never used
    updated_at: dt.datetime  # the last change of its lines; the time of reading for a basket never used


class BasketQueries:
    """Read baskets from the basket read model; never touches aggregates or events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @unavailable_when_down
    async def basket_of(self, customer_id: str) -> BasketRow:
        """Return the customer's basket; an empty one (total 0.00) when the customer never used it."""
        async with self._pool.acquire() as conn:
            # One snapshot for both reads, so the lines always add up to the total.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                head = await conn.fetchrow(_BASKET, customer_id)
                lines = await conn.fetch(_LINES, customer_id) if head is not None else []
        if head is None:
            return empty_basket(customer_id)
        return BasketRow(
            id=str(head["id"]),
            customer_id=customer_id,
            lines=tuple(BasketLineRow.from_record(r) for r in lines),
            total_price=head["total_price"],
            version=head["version"],
            updated_at=head["updated_at"],
        )


def empty_basket(customer_id: str) -> BasketRow:
    """Return the basket of a customer who never put anything in one."""
    return BasketRow(
        id=basket_id_of(customer_id),
        customer_id=customer_id,
        lines=(),
        total_price=ZERO,
        version=0,
        updated_at=dt.datetime.now(dt.UTC),
    )
