"""Ordering queries: the caller's buyer profile, one order, and the newest-first list of orders."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id
from app.schema import described
from app.schema.access import require_customer
from app.schema.connections import Connection, page_connection, page_size
from app.schema.context import Info
from app.schema.ordering.types import Buyer, Order, OrderStatus, visible_scope


@strawberry.type
class OrderingQuery:
    @described.field("The caller's buyer profile; null when not signed in. `address` is null until set.")
    async def me(self, info: Info) -> Buyer | None:
        principal = info.context.principal
        if not principal.is_authenticated:
            return None
        row = await info.context.container.ordering.buyer(principal.customer_id)
        return Buyer.from_principal(principal) if row is None else Buyer.from_row(row)

    @described.field("One order: the caller's own (any order for an admin); null otherwise.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        scope = visible_scope(require_customer(info))
        row = await info.context.container.ordering.order(check_id("id", id), buyer_id=scope)
        return None if row is None else Order.from_row(row)

    @described.field(
        "Orders, newest first: a customer's own only (a `buyerId` other than theirs matches nothing); "
        "every order for an admin, or one buyer's with `buyerId`."
    )
    async def orders(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: OrderStatus | None = None,
        buyer_id: strawberry.ID | None = None,
    ) -> Connection[Order]:
        scope = visible_scope(require_customer(info))
        page = await info.context.container.ordering.list_orders(
            first=page_size(first, 20),
            after=after,
            status=None if status is None else status.value,
            buyer_id=None if buyer_id is None else check_id("buyerId", buyer_id),
            scope=scope,
        )
        return page_connection(page, Order.from_row)
