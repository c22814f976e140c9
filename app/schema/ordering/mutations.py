"""Ordering mutations: the caller's delivery address, placing an order from the basket, status changes."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id
from app.domain.ordering import commands
from app.ids import new_id
from app.schema import described
from app.schema.access import require_admin, require_customer
from app.schema.commands import dispatch
from app.schema.context import Info
from app.schema.ordering import inputs, payloads


@strawberry.type
class OrderingMutation:
    @described.mutation("Set the caller's delivery address (each field required, at most 100 characters).")
    async def update_buyer_address(
        self, info: Info, input: inputs.UpdateBuyerAddressInput
    ) -> payloads.UpdateBuyerAddressResult:
        principal = require_customer(info)
        command = commands.UpdateBuyerAddress(
            buyer_id=principal.customer_id,
            name=principal.name,
            email=principal.email,
            street=input.street,
            city=input.city,
            province=input.province,
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.UpdateBuyerAddressSuccess.of(done)

    @described.mutation("Order what is in the caller's basket, at the books' current prices.")
    async def place_order(self, info: Info, input: inputs.PlaceOrderInput) -> payloads.PlaceOrderResult:
        principal = require_customer(info)
        command = commands.PlaceOrder(
            order_id=new_id(),
            buyer_id=principal.customer_id,
            buyer_name=principal.name,
            buyer_email=principal.email,
            buyer_email_verified=principal.email_verified,
            note=input.note,
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.PlaceOrderSuccess.of(done)

    @described.mutation("Mark a NEW order completed (admins only).")
    async def complete_order(
        self, info: Info, input: inputs.CompleteOrderInput
    ) -> payloads.CompleteOrderResult:
        require_admin(info)
        command = commands.CompleteOrder(order_id=check_id("orderId", input.order_id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CompleteOrderSuccess.of(done)

    @described.mutation("Cancel a NEW order: the caller's own, or any order for an admin.")
    async def cancel_order(self, info: Info, input: inputs.CancelOrderInput) -> payloads.CancelOrderResult:
        principal = require_customer(info)
        requested_by = None if principal.is_admin else principal.customer_id
        command = commands.CancelOrder(
            order_id=check_id("orderId", input.order_id), requested_by=requested_by
        )
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.CancelOrderSuccess.of(done)
