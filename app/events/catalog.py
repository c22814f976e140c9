"""Catalog events: books, authors, categories, publishers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.events.base import Event
from app.events.registry import REGISTRY


@REGISTRY.event("AuthorCreated")
@dataclass(frozen=True, kw_only=True)
class AuthorCreated(Event):
    author_id: str
    name: str


@REGISTRY.event("AuthorRenamed")
@dataclass(frozen=True, kw_only=True)
class AuthorRenamed(Event):
    author_id: str
    name: str


@REGISTRY.event("AuthorDeleted")
@dataclass(frozen=True, kw_only=True)
class AuthorDeleted(Event):
    author_id: str


@REGISTRY.event("CategoryCreated")
@dataclass(frozen=True, kw_only=True)
class CategoryCreated(Event):
    category_id: str
    name: str


@REGISTRY.event("CategoryRenamed")
@dataclass(frozen=True, kw_only=True)
class CategoryRenamed(Event):
    category_id: str
    name: str


@REGISTRY.event("CategoryDeleted")
@dataclass(frozen=True, kw_only=True)
class CategoryDeleted(Event):
    category_id: str


@REGISTRY.event("PublisherCreated")
@dataclass(frozen=True, kw_only=True)
class PublisherCreated(Event):
    publisher_id: str
    name: str


@REGISTRY.event("PublisherRenamed")
@dataclass(frozen=True, kw_only=True)
class PublisherRenamed(Event):
    publisher_id: str
    name: str


@REGISTRY.event("PublisherDeleted")
@dataclass(frozen=True, kw_only=True)
class PublisherDeleted(Event):
    publisher_id: str


@REGISTRY.event("BookCreated", version=2)
@dataclass(frozen=True, kw_only=True)
class BookCreated(Event):
    book_id: str
    name: str
    description: str | None
    price: Decimal
    price_sale: Decimal | None
    category_id: str
    publisher_id: str
    author_ids: tuple[str, ...]


@REGISTRY.upcaster("BookCreated", from_version=1)
def _book_created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 had one `author_id` and a float `price`; v2 has `author_ids` and exact decimal strings."""
    author_id = data.pop("author_id")
    data["author_ids"] = [author_id] if author_id else []
    data["price"] = f"{Decimal(str(data['price'])):.2f}"
    if data.get("price_sale") is not None:
        data["price_sale"] = f"{Decimal(str(data['price_sale'])):.2f}"
    data.setdefault("price_sale", None)
    data.setdefault("description", None)
    return data


@REGISTRY.event("BookUpdated")
@dataclass(frozen=True, kw_only=True)
class BookUpdated(Event):
    """The book's full details after an update (unchanged fields repeated)."""

    book_id: str
    name: str
    description: str | None
    price: Decimal
    price_sale: Decimal | None
    category_id: str
    publisher_id: str
    author_ids: tuple[str, ...]
    status: str


@REGISTRY.event("BookDeleted")
@dataclass(frozen=True, kw_only=True)
class BookDeleted(Event):
    book_id: str
