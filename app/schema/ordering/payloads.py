"""Ordering mutation results: `<Verb><Noun>Success` plus the typed errors, as one union per mutation.

Each success payload's entity field is read-your-writes: it waits until the ordering read model has
passed the mutation's position, then reads the row.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import strawberry

from app.schema import described
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.ordering.types import Buyer, Order, visible_scope
from app.schema.payloads import Changed
from app.schema.positions import Position

ORDERING = "ordering"  # the projection these payloads wait for
RYW = "The entity as the read model holds it once it has applied this change (waits, bounded)."


async def fresh_order(info: Info, order_id: str, position: Position) -> Order | None:
    await caught_up(info, position, projection=ORDERING)
    scope = visible_scope(info.context.principal)
    row = await info.context.container.ordering.order(order_id, buyer_id=scope)
    return None if row is None else Order.from_row(row)


@strawberry.type
class BuyerPayload(Changed):
    ID_FIELD: ClassVar[str] = "buyer_id"
    buyer_id: strawberry.ID

    @described.field(RYW)
    async def buyer(self, info: Info) -> Buyer | None:
        await caught_up(info, self.at, projection=ORDERING)
        row = await info.context.container.ordering.buyer(str(self.buyer_id))
        return None if row is None else Buyer.from_row(row)


@strawberry.type
class OrderPayload(Changed):
    ID_FIELD: ClassVar[str] = "order_id"
    order_id: strawberry.ID

    @described.field(RYW)
    async def order(self, info: Info) -> Order | None:
        return await fresh_order(info, str(self.order_id), self.at)


# The payload bases are not in the schema themselves; each mutation has its own success type.
@strawberry.type
class UpdateBuyerAddressSuccess(BuyerPayload):
    pass


@strawberry.type
class PlaceOrderSuccess(OrderPayload):
    pass


@strawberry.type
class CompleteOrderSuccess(OrderPayload):
    pass


@strawberry.type
class CancelOrderSuccess(OrderPayload):
    pass


UpdateBuyerAddressResult = Annotated[
    UpdateBuyerAddressSuccess | Errors, strawberry.union("UpdateBuyerAddressResult")
]
PlaceOrderResult = Annotated[PlaceOrderSuccess | Errors, strawberry.union("PlaceOrderResult")]
CompleteOrderResult = Annotated[CompleteOrderSuccess | Errors, strawberry.union("CompleteOrderResult")]
CancelOrderResult = Annotated[CancelOrderSuccess | Errors, strawberry.union("CancelOrderResult")]
