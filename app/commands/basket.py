"""Basket commands: every one names the customer whose basket it changes."""

from __future__ import annotations

from dataclasses import dataclass

from app.commands.base import Command


@dataclass(frozen=True, kw_only=True)
class AddBasketItem(Command):
    """Put `quantity` more of a book in the basket."""

    customer_id: str
    book_id: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class UpdateBasketItem(Command):
    """Set a line's quantity."""

    customer_id: str
    book_id: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class RemoveBasketItem(Command):
    customer_id: str
    book_id: str


@dataclass(frozen=True, kw_only=True)
class ClearBasket(Command):
    customer_id: str


@dataclass(frozen=True, kw_only=True)
class CheckoutBasket(Command):
    """Hand the basket over to `order_id` (sent by the checkout saga); empties it."""

    customer_id: str
    order_id: str
