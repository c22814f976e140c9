"""Catalog queries: books, authors, categories, publishers, and a stream's audit trail."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id, raise_if_any
from app.queries.catalog import BookFilter as ReadFilter
from app.queries.catalog import BookOrder
from app.queries.history import stream_history
from app.schema import described
from app.schema.access import require_admin
from app.schema.catalog.inputs import BookFilter
from app.schema.catalog.types import Author, Book, BookOrderBy, Category, Publisher, RecordedEvent
from app.schema.connections import Connection, page_connection, page_size, selects
from app.schema.context import Info
from app.schema.ids import list_errors
from app.schema.loaders import sole_root_field
from app.schema.selection import source_reads


@strawberry.type
class CatalogQuery:
    @strawberry.field
    async def book(self, info: Info, id: strawberry.ID) -> Book | None:
        loaders, book_id = info.context.loaders, check_id("id", id)
        if sole_root_field(info):
            row = await loaders.lone_book(book_id)
        else:
            row = await loaders.book.load(book_id)
        return None if row is None else Book.from_row(row)

    @strawberry.field
    async def books(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        search: str | None = None,
        filter: BookFilter | None = None,
        order_by: BookOrderBy | None = BookOrderBy.NAME,
        descending: bool | None = False,
    ) -> Connection[Book]:
        page = await info.context.container.catalog.list_books(
            first=page_size(first, 20),
            after=after,
            search=search,
            filter=query_filter(filter),
            order_by=None if order_by is None else BookOrder(order_by.value),
            descending=bool(descending),
            count=selects(info, "totalCount"),
            fields=source_reads(info._raw_info, ("edges", "node")),
        )
        return page_connection(page)  # a BookRow is a Book's source: Book.from_row

    @strawberry.field
    async def author(self, info: Info, id: strawberry.ID) -> Author | None:
        row = await info.context.loaders.author.load(check_id("id", id))
        return None if row is None else Author.from_row(row)

    @strawberry.field
    async def authors(
        self, info: Info, first: int | None = 50, after: str | None = None, search: str | None = None
    ) -> Connection[Author]:
        page = await info.context.container.catalog.list_authors(
            first=page_size(first, 50), after=after, search=search
        )
        return page_connection(page, Author.from_row)

    @strawberry.field
    async def categories(self, info: Info) -> list[Category]:
        return [Category.from_row(row) for row in await info.context.container.catalog.list_categories()]

    @strawberry.field
    async def publishers(self, info: Info) -> list[Publisher]:
        return [Publisher.from_row(row) for row in await info.context.container.catalog.list_publishers()]

    @described.field("The audit trail of one stream, oldest first; admins only.")
    async def stream_history(self, info: Info, stream_id: strawberry.ID) -> list[RecordedEvent]:
        require_admin(info)
        events = await stream_history(info.context.container.event_store, check_id("streamId", stream_id))
        return [RecordedEvent.from_recorded(event) for event in events]


def query_filter(given: BookFilter | None) -> ReadFilter | None:
    """Check the filter's ids and turn it into the read side's filter."""
    if given is None:
        return None
    raise_if_any(
        list_errors("filter.categoryIds", given.category_ids or [])
        + list_errors("filter.publisherIds", given.publisher_ids or [])
        + list_errors("filter.authorIds", given.author_ids or [])
    )
    return ReadFilter(
        min_price=given.min_price,
        max_price=given.max_price,
        category_ids=_ids(given.category_ids),
        publisher_ids=_ids(given.publisher_ids),
        author_ids=_ids(given.author_ids),
        status=None if given.status is None else given.status.value,
    )


def _ids(values: list[strawberry.ID] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(v.lower() for v in values)
