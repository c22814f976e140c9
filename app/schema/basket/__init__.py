"""The basket area of the schema: the caller's own basket, its mutations and its changes.

Decisions: every field needs a signed-in caller (anonymous: Forbidden) and acts on the caller's own
basket only, so no basket id is ever taken as input. `myBasket` never returns null for a signed-in
customer: one who never used a basket gets an empty one (totalPrice 0.00, updatedAt = now).
`clearBasket` takes an optional input (only an idempotency key). `basketChanged` takes an optional
`after` like the catalog subscriptions. A line whose book the catalog deleted stays until removed
(`available: false`) and is left out of `totalPrice`.
"""

from app.schema.basket.mutations import BasketMutation
from app.schema.basket.queries import BasketQuery
from app.schema.basket.subscriptions import BasketSubscription

__all__ = ["BasketMutation", "BasketQuery", "BasketSubscription"]
