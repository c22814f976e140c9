"""Basket output types: the basket, its items, and the change notices of basketChanged."""

from __future__ import annotations

import datetime as dt
import decimal

import strawberry

from app.queries.basket import BasketLineRow, BasketRow
from app.schema import described
from app.schema.catalog.types import Book, ChangeKind
from app.schema.context import Info


@strawberry.type
class BasketItem:
    book_id: strawberry.ID
    quantity: int
    unit_price: decimal.Decimal = strawberry.field(
        description="The price a buyer pays now: priceSale when set, else price."
    )
    line_total: decimal.Decimal = strawberry.field(description="quantity x unitPrice.")
    available: bool = strawberry.field(
        description="False once the book was deleted from the catalog: the line stays until removed, "
        "shows the last known price, and does not count in totalPrice."
    )

    @described.field("The book as the catalog holds it now; null once deleted.")
    async def book(self, info: Info) -> Book | None:
        row = await info.context.loaders.book.load(str(self.book_id))
        return None if row is None else Book.from_row(row)

    @classmethod
    def from_row(cls, row: BasketLineRow) -> BasketItem:
        return cls(
            book_id=strawberry.ID(row.book_id),
            quantity=row.quantity,
            unit_price=row.unit_price,
            line_total=row.line_total,
            available=row.available,
        )


@strawberry.type(description="A customer's basket: one per customer, its items in the order first added.")
class Basket:
    id: strawberry.ID
    items: list[BasketItem]
    total_price: decimal.Decimal = strawberry.field(description="The sum of the available items' lineTotal.")
    updated_at: dt.datetime = strawberry.field(
        description="When the items last changed (price changes do not count); now, for a basket never used."
    )

    @classmethod
    def from_row(cls, row: BasketRow) -> Basket:
        return cls(
            id=strawberry.ID(row.id),
            items=[BasketItem.from_row(line) for line in row.lines],
            total_price=row.total_price,
            updated_at=row.updated_at,
        )


async def basket_of(info: Info, customer_id: str) -> Basket:
    """Read the customer's basket from the read model as it is now."""
    return Basket.from_row(await info.context.container.basket.basket_of(customer_id))


@strawberry.type(description="A change of the caller's basket: its items, or a price the catalog changed.")
class BasketChange:
    kind: ChangeKind
    position: str
    basket_id: strawberry.ID
    customer_id: strawberry.Private[str]

    @described.field("The basket as the read model holds it now.")
    async def basket(self, info: Info) -> Basket | None:
        return await basket_of(info, self.customer_id)
