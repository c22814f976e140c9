"""Ordering output types: buyers, addresses, orders with their items, and order change notices."""

from __future__ import annotations

import datetime as dt
import decimal
import enum

import strawberry

from app.identity import Principal
from app.queries.ordering import AddressRow, BuyerRow, OrderLineRow, OrderRow
from app.schema import described
from app.schema.catalog.types import Book, ChangeKind
from app.schema.context import Info


@strawberry.enum
class OrderStatus(enum.Enum):
    NEW = "NEW"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


@strawberry.type
class Address:
    street: str
    city: str
    province: str

    @classmethod
    def from_row(cls, row: AddressRow) -> Address:
        return cls(street=row.street, city=row.city, province=row.province)


@strawberry.type
class Buyer:
    id: strawberry.ID
    name: str
    email: str | None
    address: Address | None

    @classmethod
    def from_row(cls, row: BuyerRow) -> Buyer:
        return cls(
            id=strawberry.ID(row.id), name=row.name, email=row.email, address=Address.from_row(row.address)
        )

    @classmethod
    def from_principal(cls, principal: Principal) -> Buyer:
        """The profile of a signed-in customer who has not given an address yet: what the token says."""
        return cls(
            id=strawberry.ID(principal.customer_id), name=principal.name, email=principal.email, address=None
        )


@strawberry.type
class OrderItem:
    book_id: strawberry.ID
    name: str
    quantity: int
    unit_price: decimal.Decimal

    @described.field("unitPrice times quantity.")
    def line_total(self) -> decimal.Decimal:
        return self.unit_price * self.quantity

    @described.field(
        "The book as the catalog shows it now; null once deleted. Name and price stay the order's."
    )
    async def book(self, info: Info) -> Book | None:
        row = await info.context.loaders.book.load(str(self.book_id))
        return None if row is None else Book.from_row(row)

    @classmethod
    def from_row(cls, row: OrderLineRow) -> OrderItem:
        return cls(
            book_id=strawberry.ID(row.book_id),
            name=row.name,
            quantity=row.quantity,
            unit_price=row.unit_price,
        )


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    buyer: Buyer | None = strawberry.field(
        description="The buyer and the address as they were when ordering."
    )
    items: list[OrderItem]
    total: decimal.Decimal
    note: str | None
    cancel_reason: str | None = strawberry.field(
        description="Why the order was cancelled, when a reason was given."
    )
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: OrderRow) -> Order:
        buyer = Buyer(
            id=strawberry.ID(row.buyer_id),
            name=row.buyer_name,
            email=row.buyer_email,
            address=Address.from_row(row.address),
        )
        return cls(
            id=strawberry.ID(row.id),
            status=OrderStatus(row.status),
            buyer=buyer,
            items=[OrderItem.from_row(line) for line in row.lines],
            total=row.total,
            note=row.note,
            cancel_reason=row.cancel_reason,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def visible_scope(principal: Principal) -> str | None:
    """Return whose orders the caller may see: None (all) for an admin, else their own buyer id."""
    return None if principal.is_admin else principal.customer_id


@strawberry.type
class OrderChange:
    kind: ChangeKind
    position: str
    order_id: strawberry.ID
    scope: strawberry.Private[str | None]

    @described.field("The order as the read model holds it now.")
    async def order(self, info: Info) -> Order | None:
        row = await info.context.container.ordering.order(str(self.order_id), buyer_id=self.scope)
        return None if row is None else Order.from_row(row)
