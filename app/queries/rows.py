"""The rows catalog queries return: plain frozen dataclasses read from the read.* views."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from app.domain.catalog.status import BookStatus

BOOK_COLUMNS = """id, name, description, price, price_sale, status, category_id, category_name,
    publisher_id, publisher_name, author_ids, author_names, average_rating, total_reviews,
    version, created_at, updated_at"""
AUTHOR_COLUMNS = "id, name, version, created_at, updated_at"
CATEGORY_COLUMNS = "id, name, version, book_count"
PUBLISHER_COLUMNS = "id, name, version"


@dataclass(frozen=True, slots=True, kw_only=True)
class BookRow:
    id: str
    name: str
    description: str | None
    price: Decimal
    price_sale: Decimal | None
    status: BookStatus
    category_id: str
    category_name: str
    publisher_id: str
    publisher_name: str
    author_ids: tuple[str, ...]
    author_names: tuple[str, ...]  # same order as author_ids
    average_rating: float
    total_reviews: int
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> BookRow:
        return cls(
            id=str(r["id"]),
            name=r["name"],
            description=r["description"],
            price=r["price"],
            price_sale=r["price_sale"],
            status=BookStatus(r["status"]),
            category_id=str(r["category_id"]),
            category_name=r["category_name"],
            publisher_id=str(r["publisher_id"]),
            publisher_name=r["publisher_name"],
            author_ids=tuple(map(str, r["author_ids"])),
            author_names=tuple(r["author_names"]),
            average_rating=r["average_rating"],
            total_reviews=r["total_reviews"],
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorRow:
    id: str
    name: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> AuthorRow:
        return cls(
            id=str(r["id"]),
            name=r["name"],
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryRow:
    id: str
    name: str
    version: int
    book_count: int  # books not deleted

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> CategoryRow:
        return cls(id=str(r["id"]), name=r["name"], version=r["version"], book_count=r["book_count"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherRow:
    id: str
    name: str
    version: int

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> PublisherRow:
        return cls(id=str(r["id"]), name=r["name"], version=r["version"])
