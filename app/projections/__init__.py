"""Projections: read models kept by applying events, and the adapter that runs them on the bus."""

from app.projections.base import Projection, ProjectionConsumer, ProjectionMissing, table_prefix
from app.projections.catalog import CATALOG

PROJECTIONS: dict[str, Projection] = {CATALOG.name: CATALOG}

__all__ = ["PROJECTIONS", "Projection", "ProjectionConsumer", "ProjectionMissing", "table_prefix"]
