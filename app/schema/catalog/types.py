"""Catalog output types: books, authors, categories, publishers, change notices, recorded events."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from typing import cast

import strawberry
from strawberry.scalars import JSON

from app.domain.catalog.status import BookStatus
from app.queries import history
from app.queries.paging import Page
from app.queries.rows import AuthorRow, BookRow, CategoryRow, PublisherRow
from app.schema import described
from app.schema.connections import Connection, page_connection, page_size
from app.schema.context import Info
from app.schema.selection import field_reading

strawberry.enum(BookStatus, name="BookStatus")


@strawberry.enum
class BookOrderBy(enum.Enum):
    NAME = "NAME"
    PRICE = "PRICE"
    RATING = "RATING"
    NEWEST = "NEWEST"
    RELEVANCE = strawberry.enum_value("RELEVANCE", description="Best match first; needs `search`.")


@strawberry.enum
class ChangeKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@strawberry.type
class Category:
    id: strawberry.ID
    name: str
    book_count: int

    @classmethod
    def from_row(cls, row: CategoryRow) -> Category:
        return cls(id=strawberry.ID(row.id), name=row.name, book_count=row.book_count)


@strawberry.type
class Publisher:
    id: strawberry.ID
    name: str

    @classmethod
    def from_row(cls, row: PublisherRow) -> Publisher:
        return cls(id=strawberry.ID(row.id), name=row.name)


@strawberry.type
class Author:
    id: strawberry.ID
    name: str

    @strawberry.field
    async def books(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[Book]:
        size = page_size(first, 20)
        page = await info.context.loaders.books_by_author.load((str(self.id), size, after))
        return book_connection(page)

    @classmethod
    def from_row(cls, row: AuthorRow) -> Author:
        return cls(id=strawberry.ID(row.id), name=row.name)


@strawberry.type
class Book:
    id: strawberry.ID
    name: str
    description: str | None
    price: decimal.Decimal
    price_sale: decimal.Decimal | None
    status: BookStatus
    average_rating: float
    total_reviews: int
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    category_id: strawberry.Private[str | None]
    publisher_id: strawberry.Private[str | None]
    author_ids: strawberry.Private[tuple[str, ...]]

    @field_reading("category_id")
    async def category(self, info: Info) -> Category | None:
        if self.category_id is None:
            return None
        row = await info.context.loaders.category.load(self.category_id)
        return None if row is None else Category.from_row(row)

    @field_reading("publisher_id")
    async def publisher(self, info: Info) -> Publisher | None:
        if self.publisher_id is None:
            return None
        row = await info.context.loaders.publisher.load(self.publisher_id)
        return None if row is None else Publisher.from_row(row)

    @field_reading("author_ids")
    async def authors(self, info: Info) -> list[Author]:
        rows = await info.context.loaders.author.load_many(list(self.author_ids))
        return [Author.from_row(row) for row in rows if row is not None]

    @staticmethod
    def from_row(row: BookRow) -> Book:
        """The book `row` holds, with nothing copied: strawberry reads each field above from the row by its
        name, and passes the row as `self` to the resolvers, which read its `category_id`, `publisher_id`
        and `author_ids`. A page of 20 books built 20 of these objects; the rows are enough.
        tests/unit/test_sources.py holds the row to every name the type reads."""
        return cast(Book, row)


@strawberry.type
class RecordedEvent:
    position: str
    stream_id: strawberry.ID
    version: int
    type: str
    schema_version: int
    data: JSON
    metadata: JSON
    recorded_at: dt.datetime

    @classmethod
    def from_recorded(cls, event: history.RecordedEvent) -> RecordedEvent:
        return cls(
            position=str(event.position),
            stream_id=strawberry.ID(event.stream_id),
            version=event.stream_version,
            type=event.event_type,
            schema_version=event.schema_version,
            data=JSON(event.data),
            metadata=JSON(event.metadata),
            recorded_at=event.recorded_at,
        )


@strawberry.type
class BookChange:
    kind: ChangeKind
    position: str
    book_id: strawberry.ID

    @described.field("The book as the read model holds it now; null once deleted.")
    async def book(self, info: Info) -> Book | None:
        row = await info.context.loaders.book.load(str(self.book_id))
        return None if row is None else Book.from_row(row)


@strawberry.type
class CatalogChange:
    kind: ChangeKind
    position: str
    entity: str
    entity_id: strawberry.ID


def book_connection(page: Page[BookRow]) -> Connection[Book]:
    return page_connection(page)  # a BookRow is a Book's source: Book.from_row
