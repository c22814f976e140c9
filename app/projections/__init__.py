"""Projections: read models kept by applying events, and the adapter that runs them on the bus."""

from app.projections.base import Projection, ProjectionConsumer, ProjectionMissing, table_prefix
from app.projections.basket import BASKET
from app.projections.catalog import CATALOG
from app.projections.ordering import ORDERING
from app.projections.rating import RATING

PROJECTIONS: dict[str, Projection] = {CATALOG.name: CATALOG}
PROJECTIONS[BASKET.name] = BASKET
PROJECTIONS[ORDERING.name] = ORDERING
PROJECTIONS[RATING.name] = RATING

__all__ = ["PROJECTIONS", "Projection", "ProjectionConsumer", "ProjectionMissing", "table_prefix"]
