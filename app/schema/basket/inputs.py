"""Basket mutation inputs."""

from __future__ import annotations

import strawberry

QUANTITY = "From 1 to 99; a line holds at most 99 of one book."


@strawberry.input
class AddBasketItemInput:
    book_id: strawberry.ID
    quantity: int = strawberry.field(description=f"How many more to add. {QUANTITY}")
    idempotency_key: str | None = None


@strawberry.input
class UpdateBasketItemInput:
    book_id: strawberry.ID
    quantity: int = strawberry.field(description=f"The line's new quantity. {QUANTITY}")
    idempotency_key: str | None = None


@strawberry.input
class RemoveBasketItemInput:
    book_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input(description="Optional: clearBasket may be called without an input.")
class ClearBasketInput:
    idempotency_key: str | None = None
