"""Catalog read functions over the read.* views: by-id lookups for DataLoaders and paged lists."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import asyncpg

from app.db import unavailable_when_down
from app.ids import is_id
from app.queries import reads
from app.queries.books import BookFilter, BookListing, BookOrder
from app.queries.paging import (
    Edge,
    Keyset,
    Page,
    check_first,
    decode_cursor,
    make_page,
    text_key,
)
from app.queries.reads import AUTHOR, BOOK, CATEGORY, PUBLISHER
from app.queries.rows import (
    AUTHOR_COLUMNS,
    BOOK_COLUMNS,
    CATEGORY_COLUMNS,
    PUBLISHER_COLUMNS,
    AuthorRow,
    BookRow,
    CategoryRow,
    PublisherRow,
    book_columns,
    book_reader,
)
from app.queries.search import clean_search

R = TypeVar("R")
_AUTHOR_ORDERING = "author:name"
_AUTHORS = Keyset("read.author_view", AUTHOR_COLUMNS, "name", "text")
_FIRST_BOOKS_OF_AUTHORS = f"""
SELECT b.*, a.author_id AS for_author
FROM unnest($1::uuid[]) AS a(author_id)
CROSS JOIN LATERAL (
    SELECT {BOOK_COLUMNS}, name AS sort_key FROM read.book_view
    WHERE author_ids @> ARRAY[a.author_id] ORDER BY name, id LIMIT $2
) AS b
"""
_BOOK_BY_ID = f"SELECT {BOOK_COLUMNS} FROM read.book_view WHERE id = $1::uuid"
_BOOK_COUNTS_OF_AUTHORS = """
SELECT author_id, count(*) FROM read.book_view, unnest(author_ids) AS author_id
WHERE author_ids && $1::uuid[] AND author_id = ANY($1::uuid[]) GROUP BY author_id
"""


def _like_pattern(text: str) -> str:
    """Match `text` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class CatalogQueries:
    """Read the catalog views; never touches aggregates or events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @unavailable_when_down
    async def books_by_ids(self, ids: Sequence[str]) -> list[BookRow | None]:
        """Return the books in input order; None where an id is unknown, deleted or malformed."""
        return await self._by_ids(BOOK, "book_view", BOOK_COLUMNS, ids, BookRow.from_record)

    @unavailable_when_down
    async def book_by_id(self, id: str) -> BookRow | None:
        """Return one book, as books_by_ids([id]) would."""
        if not is_id(id):
            return None
        canonical = id.lower()
        reads.read_rows(BOOK, (canonical,))
        record = await self._pool.fetchrow(_BOOK_BY_ID, canonical)
        return None if record is None else BookRow.from_record(record)

    @unavailable_when_down
    async def list_books(
        self,
        *,
        first: int = 20,
        after: str | None = None,
        search: str | None = None,
        filter: BookFilter | None = None,
        order_by: BookOrder | None = None,
        descending: bool = False,
        count: bool = True,
        fields: Collection[str] | None = None,
    ) -> Page[BookRow]:
        """Return one page of books; order_by None means RELEVANCE with a search, else NAME.

        Without `count` the page's total_count is None: counting every match is a scan of all of them,
        which a request that does not select `totalCount` need not pay for. With `fields` (BookRow's
        names) only their columns are read, and the rows' other fields are None (rows.book_reader).
        """
        check_first(first)
        reads.read_listing(*reads.BOOK_LISTING)
        columns = book_columns(fields)
        listing = BookListing(
            search=search, filter=filter, order_by=order_by, descending=descending, columns=columns
        )
        # With the count: one round trip, and the count and the page read from one snapshot.
        sql, args = listing.page_and_count_sql(first, after) if count else listing.page_sql(first, after)
        records = await self._pool.fetch(sql, *args)
        edges = listing.edges([r for r in records if r["id"] is not None], book_reader(columns))
        return make_page(edges, first, after=after, total_count=records[0]["total_count"] if count else None)

    @unavailable_when_down
    async def books_by_author(
        self, author_id: str, *, first: int = 20, after: str | None = None
    ) -> Page[BookRow]:
        """Return one page of an author's books by name."""
        return await self.list_books(
            first=first, after=after, filter=BookFilter(author_ids=(author_id,)), order_by=BookOrder.NAME
        )

    @unavailable_when_down
    async def first_books_of_authors(self, author_ids: Sequence[str], first: int) -> list[Page[BookRow]]:
        """Return the first page of each author's books by name: two queries for any number of authors."""
        check_first(first)
        reads.read_listing(*reads.BOOK_LISTING)
        ids = [str(uuid.UUID(i)) for i in author_ids]
        listing = BookListing(search=None, filter=None, order_by=BookOrder.NAME, descending=False)
        async with self._pool.acquire() as conn:
            records = await conn.fetch(_FIRST_BOOKS_OF_AUTHORS, ids, first + 1)
            totals = dict(await conn.fetch(_BOOK_COUNTS_OF_AUTHORS, ids))
        edges: dict[str, list[Edge[BookRow]]] = {i: [] for i in ids}
        for r, edge in zip(records, listing.edges(records, BookRow.from_record), strict=True):
            edges[str(r["for_author"])].append(edge)
        return [make_page(edges[i], first, after=None, total_count=totals.get(uuid.UUID(i), 0)) for i in ids]

    @unavailable_when_down
    async def authors_by_ids(self, ids: Sequence[str]) -> list[AuthorRow | None]:
        return await self._by_ids(AUTHOR, "author_view", AUTHOR_COLUMNS, ids, AuthorRow.from_record)

    @unavailable_when_down
    async def list_authors(
        self, *, first: int = 50, after: str | None = None, search: str | None = None
    ) -> Page[AuthorRow]:
        """Return one page of authors by name; search matches any part of the name, any case."""
        check_first(first)
        reads.read_listing(AUTHOR)
        args: list[Any] = []
        conditions = ["TRUE"]
        search = clean_search(search)
        if search is not None:
            args.append(_like_pattern(search))
            conditions.append(f"name ILIKE ${len(args)}")
        cursor = None if after is None else decode_cursor(after, _AUTHOR_ORDERING, text_key)
        count_sql = _AUTHORS.count_sql(conditions)
        sql, page_args = _AUTHORS.page_sql(conditions, args, cursor, first)
        async with self._pool.acquire() as conn:
            records = await conn.fetch(sql, *page_args)
            total = await conn.fetchval(count_sql, *args)
        edges = [Edge((_AUTHOR_ORDERING, r["name"], str(r["id"])), AuthorRow.from_record(r)) for r in records]
        return make_page(edges, first, after=after, total_count=total)

    @unavailable_when_down
    async def categories_by_ids(self, ids: Sequence[str]) -> list[CategoryRow | None]:
        reads.read_listing(BOOK)  # a category's book count changes with its books
        return await self._by_ids(CATEGORY, "category_view", CATEGORY_COLUMNS, ids, CategoryRow.from_record)

    @unavailable_when_down
    async def list_categories(self) -> list[CategoryRow]:
        """Return every category by name, with its count of books."""
        reads.read_listing(CATEGORY, BOOK)
        records = await self._pool.fetch(
            f"SELECT {CATEGORY_COLUMNS} FROM read.category_view ORDER BY name, id"
        )
        return [CategoryRow.from_record(r) for r in records]

    @unavailable_when_down
    async def publishers_by_ids(self, ids: Sequence[str]) -> list[PublisherRow | None]:
        return await self._by_ids(
            PUBLISHER, "publisher_view", PUBLISHER_COLUMNS, ids, PublisherRow.from_record
        )

    @unavailable_when_down
    async def list_publishers(self) -> list[PublisherRow]:
        """Return every publisher by name."""
        reads.read_listing(PUBLISHER)
        records = await self._pool.fetch(
            f"SELECT {PUBLISHER_COLUMNS} FROM read.publisher_view ORDER BY name, id"
        )
        return [PublisherRow.from_record(r) for r in records]

    async def _by_ids(
        self, entity: str, view: str, columns: str, ids: Sequence[str], make: Callable[[asyncpg.Record], R]
    ) -> list[R | None]:
        canonical = {i: str(uuid.UUID(i)) for i in ids if isinstance(i, str) and is_id(i)}
        reads.read_rows(entity, canonical.values())
        found: dict[str, R] = {}
        if canonical:
            sql = f"SELECT {columns} FROM read.{view} WHERE id = ANY($1::uuid[])"
            records = await self._pool.fetch(sql, sorted(set(canonical.values())))
            found = {str(r["id"]): make(r) for r in records}
        return [found.get(canonical.get(i, "")) for i in ids]


__all__ = ["BookFilter", "BookOrder", "CatalogQueries", "Page"]
