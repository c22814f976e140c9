"""Catalog mutations: the named entities (authors, categories, publishers) and books."""

from __future__ import annotations

from strawberry.tools import merge_types

from app.schema.catalog.books import BookMutation
from app.schema.catalog.named import NamedEntityMutation

CatalogMutation = merge_types("CatalogMutation", (NamedEntityMutation, BookMutation))
