"""Finance events: the checkout saga's requests (stream id = `checkout_id_of(order_id)`)."""

from __future__ import annotations

from dataclasses import dataclass

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("CheckoutRequested")
@dataclass(frozen=True, kw_only=True)
class CheckoutRequested(Event):
    """The saga asks the basket context to check out `basket_id` for `order_id` (attempt 1..3)."""

    checkout_id: str
    order_id: str
    basket_id: str
    customer_id: str
    attempt: int
