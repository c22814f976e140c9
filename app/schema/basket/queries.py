"""Basket queries: the caller's own basket."""

from __future__ import annotations

import strawberry

from app.schema import described
from app.schema.access import require_customer
from app.schema.basket.types import Basket, basket_of
from app.schema.context import Info


@strawberry.type
class BasketQuery:
    @described.field(
        "The caller's basket; a customer who never used one gets an empty basket (totalPrice 0.00), "
        "not null. Needs a signed-in user."
    )
    async def my_basket(self, info: Info) -> Basket | None:
        return await basket_of(info, require_customer(info).customer_id)
