"""Basket commands: every one names the customer whose basket it changes.

All are safe to retry after a concurrent change: re-deciding on the fresh basket is what was meant (two
of the customer's own changes racing are a double click), so the bus retries them until a deadline;
checkout, sent by the saga inside its transaction, keeps the short retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from app.domain.commands import Command, Emits
from app.events.basket import (
    BasketCheckedOut,
    BasketCheckoutFailed,
    BasketCleared,
    BasketItemAdded,
    BasketItemQuantityChanged,
    BasketItemRemoved,
)


@dataclass(frozen=True, kw_only=True)
class AddBasketItem(Command):
    """Put `quantity` more of a book in the basket."""

    emits: ClassVar[Emits] = (BasketItemAdded,)
    retry_safe: ClassVar[bool] = True
    customer_id: str
    book_id: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class UpdateBasketItem(Command):
    """Set a line's quantity."""

    emits: ClassVar[Emits] = (BasketItemQuantityChanged,)
    retry_safe: ClassVar[bool] = True
    customer_id: str
    book_id: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class RemoveBasketItem(Command):
    emits: ClassVar[Emits] = (BasketItemRemoved,)
    retry_safe: ClassVar[bool] = True
    customer_id: str
    book_id: str


@dataclass(frozen=True, kw_only=True)
class ClearBasket(Command):
    emits: ClassVar[Emits] = (BasketCleared,)
    retry_safe: ClassVar[bool] = True
    customer_id: str


@dataclass(frozen=True, kw_only=True)
class CheckoutBasket(Command):
    """Hand the basket over to `order_id` (sent by the checkout saga); empties it."""

    emits: ClassVar[Emits] = (BasketCheckedOut, BasketCheckoutFailed)
    retry_safe: ClassVar[bool] = True
    customer_id: str
    order_id: str
