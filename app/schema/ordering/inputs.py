"""Ordering mutation inputs."""

from __future__ import annotations

import strawberry


@strawberry.input
class UpdateBuyerAddressInput:
    street: str
    city: str
    province: str
    idempotency_key: str | None = None


@strawberry.input(description="The order is built from the caller's basket at the books' current prices.")
class PlaceOrderInput:
    note: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class CompleteOrderInput:
    order_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    idempotency_key: str | None = None
