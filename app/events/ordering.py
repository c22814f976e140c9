"""Ordering events: buyer profiles (stream id = customer id) and orders (stream id = order id)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("BuyerAddressUpdated")
@dataclass(frozen=True, kw_only=True)
class BuyerAddressUpdated(Event):
    """The buyer's delivery address, with the name and email their identity token carried then."""

    buyer_id: str
    name: str
    email: str | None
    street: str
    city: str
    province: str


@dataclass(frozen=True, kw_only=True)
class OrderLine:
    """One line of a placed order: the book's name and unit price as they were at placement."""

    book_id: str
    name: str
    quantity: int
    unit_price: Decimal


@REGISTRY.event("OrderPlaced")
@dataclass(frozen=True, kw_only=True)
class OrderPlaced(Event):
    order_id: str
    buyer_id: str
    buyer_name: str
    buyer_email: str | None
    basket_id: str
    street: str
    city: str
    province: str
    note: str | None
    lines: tuple[OrderLine, ...]
    total: Decimal
    # The identity provider vouched for buyer_email; False for orders placed before this was recorded.
    buyer_email_verified: bool = False


@REGISTRY.event("OrderCompleted")
@dataclass(frozen=True, kw_only=True)
class OrderCompleted(Event):
    order_id: str
    buyer_id: str


@REGISTRY.event("OrderCancelled")
@dataclass(frozen=True, kw_only=True)
class OrderCancelled(Event):
    """The order was cancelled by its buyer, an admin, or the checkout saga (then `reason` says why)."""

    order_id: str
    buyer_id: str
    reason: str | None
