"""Ordering commands: buyer profiles and orders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from app.domain.commands import Command, Emits
from app.events.ordering import BuyerAddressUpdated, OrderCancelled, OrderCompleted, OrderPlaced


@dataclass(frozen=True, kw_only=True)
class UpdateBuyerAddress(Command):
    emits: ClassVar[Emits] = (BuyerAddressUpdated,)
    buyer_id: str
    name: str
    email: str | None
    street: str
    city: str
    province: str


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Command):
    """Build order `order_id` from the buyer's basket, at the books' current prices."""

    emits: ClassVar[Emits] = (OrderPlaced,)
    minted: ClassVar[tuple[str, ...]] = ("order_id",)

    order_id: str
    buyer_id: str
    buyer_name: str
    buyer_email: str | None
    note: str | None
    buyer_email_verified: bool = False


@dataclass(frozen=True, kw_only=True)
class CompleteOrder(Command):
    """Mark an order completed (admins only; the resolver checks the role)."""

    emits: ClassVar[Emits] = (OrderCompleted,)
    order_id: str


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Command):
    """Cancel an order; `requested_by` is the customer asking (who must own it), None for admins and sagas."""

    emits: ClassVar[Emits] = (OrderCancelled,)
    order_id: str
    requested_by: str | None
    reason: str | None = None
