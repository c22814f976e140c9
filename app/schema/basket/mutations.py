"""Basket mutations: always on the caller's own basket; anonymous callers get Forbidden."""

from __future__ import annotations

import strawberry

from app.domain.basket import commands
from app.domain.fields import check_id
from app.schema import described
from app.schema.access import require_customer
from app.schema.basket import inputs, payloads
from app.schema.commands import dispatch
from app.schema.context import Info


@strawberry.type
class BasketMutation:
    @described.mutation("Put `quantity` more of a book in the caller's basket.")
    async def add_basket_item(
        self, info: Info, input: inputs.AddBasketItemInput
    ) -> payloads.AddBasketItemResult:
        customer_id = require_customer(info).customer_id
        command = commands.AddBasketItem(
            customer_id=customer_id, book_id=check_id("bookId", input.book_id), quantity=input.quantity
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.AddBasketItemSuccess.of(done, customer_id=customer_id)

    @described.mutation("Set the quantity of a book already in the caller's basket.")
    async def update_basket_item(
        self, info: Info, input: inputs.UpdateBasketItemInput
    ) -> payloads.UpdateBasketItemResult:
        customer_id = require_customer(info).customer_id
        command = commands.UpdateBasketItem(
            customer_id=customer_id, book_id=check_id("bookId", input.book_id), quantity=input.quantity
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.UpdateBasketItemSuccess.of(done, customer_id=customer_id)

    @described.mutation("Take a book out of the caller's basket.")
    async def remove_basket_item(
        self, info: Info, input: inputs.RemoveBasketItemInput
    ) -> payloads.RemoveBasketItemResult:
        customer_id = require_customer(info).customer_id
        command = commands.RemoveBasketItem(
            customer_id=customer_id, book_id=check_id("bookId", input.book_id)
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.RemoveBasketItemSuccess.of(done, customer_id=customer_id)

    @described.mutation("Empty the caller's basket; an empty one stays as it is. The input is optional.")
    async def clear_basket(
        self, info: Info, input: inputs.ClearBasketInput | None = None
    ) -> payloads.ClearBasketResult:
        customer_id = require_customer(info).customer_id
        key = None if input is None else input.idempotency_key
        done = await dispatch(info, commands.ClearBasket(customer_id=customer_id), key)
        return payloads.ClearBasketSuccess.of(done, customer_id=customer_id)
