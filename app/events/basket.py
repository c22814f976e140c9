"""Basket events: one basket per customer; its stream id is `basket_id_of(customer_id)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("BasketItemAdded")
@dataclass(frozen=True, kw_only=True)
class BasketItemAdded(Event):
    """A book was put in the basket; `quantity` is the line's quantity after the addition."""

    basket_id: str
    customer_id: str
    book_id: str
    quantity: int


@REGISTRY.event("BasketItemQuantityChanged")
@dataclass(frozen=True, kw_only=True)
class BasketItemQuantityChanged(Event):
    basket_id: str
    customer_id: str
    book_id: str
    quantity: int


@REGISTRY.event("BasketItemRemoved")
@dataclass(frozen=True, kw_only=True)
class BasketItemRemoved(Event):
    basket_id: str
    customer_id: str
    book_id: str


@REGISTRY.event("BasketCleared")
@dataclass(frozen=True, kw_only=True)
class BasketCleared(Event):
    basket_id: str
    customer_id: str


@dataclass(frozen=True, kw_only=True)
class CheckedOutLine:
    """How many of a book a checkout took out of the basket."""

    book_id: str
    quantity: int


@REGISTRY.event("BasketCheckedOut", version=2)
@dataclass(frozen=True, kw_only=True)
class BasketCheckedOut(Event):
    """The basket handed `lines` over to order `order_id`; no lines (v1 events) means all of it.

    `left` is what the basket holds afterwards, so a reader that meets this event before an earlier
    one of the same stream (positions follow transactions, not stream versions) still shows it right.
    """

    basket_id: str
    customer_id: str
    order_id: str
    lines: tuple[CheckedOutLine, ...] = ()
    left: tuple[CheckedOutLine, ...] = ()


@REGISTRY.upcaster("BasketCheckedOut", from_version=1)
def _basket_checked_out_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 emptied the whole basket; v2 names the lines taken, and an empty list still means all."""
    data.setdefault("lines", [])
    return data


@REGISTRY.event("BasketCheckoutFailed")
@dataclass(frozen=True, kw_only=True)
class BasketCheckoutFailed(Event):
    """The basket could not be checked out for `order_id` (for example: it was already empty)."""

    basket_id: str
    customer_id: str
    order_id: str
    reason: str
