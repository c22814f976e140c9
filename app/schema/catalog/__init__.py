"""The catalog area of the schema: books, authors, categories, publishers."""

from app.schema.catalog.mutations import CatalogMutation
from app.schema.catalog.queries import CatalogQuery
from app.schema.catalog.subscriptions import CatalogSubscription

__all__ = ["CatalogMutation", "CatalogQuery", "CatalogSubscription"]
