"""The ordering area of the schema: buyer profiles and orders."""

from app.schema.ordering.mutations import OrderingMutation
from app.schema.ordering.queries import OrderingQuery
from app.schema.ordering.subscriptions import OrderingSubscription

__all__ = ["OrderingMutation", "OrderingQuery", "OrderingSubscription"]
