"""The rating area of the schema: feedback on books."""

from app.schema.rating.mutations import RatingMutation
from app.schema.rating.queries import RatingQuery
from app.schema.rating.subscriptions import RatingSubscription

__all__ = ["RatingMutation", "RatingQuery", "RatingSubscription"]
