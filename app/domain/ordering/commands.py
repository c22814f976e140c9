"""Ordering commands: buyer profiles and orders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from app.domain.commands import Command


@dataclass(frozen=True, kw_only=True)
class UpdateBuyerAddress(Command):
    buyer_id: str
    name: str
    email: str | None
    street: str
    city: str
    province: str


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Command):
    """Build order `order_id` from the buyer's basket, at the books' current prices."""

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

    order_id: str


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Command):
    """Cancel an order; `requested_by` is the customer asking (who must own it), None for admins and sagas."""

    order_id: str
    requested_by: str | None
    reason: str | None = None
