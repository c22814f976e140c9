"""Projections: read models kept by applying events, and the adapter that runs them on the bus."""

from app.projections.base import Projection, ProjectionConsumer, ProjectionMissing, table_prefix
from app.projections.basket import BASKET
from app.projections.catalog import CATALOG
from app.projections.ordering import ORDERING
from app.projections.rating import RATING

# Every projection of this version, by name: a new context's projection is added here and nowhere else.
PROJECTIONS: dict[str, Projection] = {p.name: p for p in (CATALOG, BASKET, ORDERING, RATING)}

__all__ = ["PROJECTIONS", "Projection", "ProjectionConsumer", "ProjectionMissing", "table_prefix"]
