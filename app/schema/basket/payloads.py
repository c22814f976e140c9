"""Basket mutation results: `<Verb><Noun>Success` plus the typed errors, as one union per mutation.

Each success payload's `basket` is read-your-writes: it waits until the basket read model has passed
the mutation's position, then reads the caller's basket.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import strawberry

from app.schema import described
from app.schema.basket.types import Basket, basket_of
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.payloads import Changed

BASKET = "basket"  # the projection these payloads wait for
RYW = "The basket as the read model holds it once it has applied this change (waits, bounded)."


@strawberry.type
class BasketPayload(Changed):
    ID_FIELD: ClassVar[str] = "basket_id"
    basket_id: strawberry.ID
    customer_id: strawberry.Private[str]

    @described.field(RYW)
    async def basket(self, info: Info) -> Basket | None:
        await caught_up(info, self.at, projection=BASKET)
        return await basket_of(info, self.customer_id)


# The payload base is not in the schema itself; each mutation has its own success type.
@strawberry.type
class AddBasketItemSuccess(BasketPayload):
    pass


@strawberry.type
class UpdateBasketItemSuccess(BasketPayload):
    pass


@strawberry.type
class RemoveBasketItemSuccess(BasketPayload):
    pass


@strawberry.type
class ClearBasketSuccess(BasketPayload):
    pass


AddBasketItemResult = Annotated[AddBasketItemSuccess | Errors, strawberry.union("AddBasketItemResult")]
UpdateBasketItemResult = Annotated[
    UpdateBasketItemSuccess | Errors, strawberry.union("UpdateBasketItemResult")
]
RemoveBasketItemResult = Annotated[
    RemoveBasketItemSuccess | Errors, strawberry.union("RemoveBasketItemResult")
]
ClearBasketResult = Annotated[ClearBasketSuccess | Errors, strawberry.union("ClearBasketResult")]
