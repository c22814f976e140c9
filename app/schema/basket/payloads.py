"""Basket mutation results: `<Verb><Noun>Success` plus the typed errors, as one union per mutation.

Each success payload's `basket` is read-your-writes: it waits until the basket read model has passed
the mutation's position, then reads the caller's basket.
"""

from __future__ import annotations

from typing import Annotated, Self

import strawberry

from app.commands.results import CommandResult
from app.schema import described
from app.schema.basket.types import Basket, basket_of
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.positions import Position

BASKET = "basket"  # the projection these payloads wait for
RYW = "The basket as the read model holds it once it has applied this change (waits, bounded)."


@strawberry.type
class BasketPayload:
    basket_id: strawberry.ID
    position: str
    at: strawberry.Private[Position]
    customer_id: strawberry.Private[str]

    @classmethod
    def of(cls, done: CommandResult, customer_id: str) -> Self:
        return cls(
            basket_id=strawberry.ID(done.entity_id),
            position=str(done.position),
            at=done.position,
            customer_id=customer_id,
        )

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
