"""The `books` listing: filters, search, four sort orders (plus relevance) and keyset cursors."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from app.domain.catalog.status import BookStatus
from app.domain.errors import FieldError, ValidationError
from app.domain.fields import entity_ids
from app.queries.paging import (
    Edge,
    decimal_key,
    decode_cursor,
    number_key,
    text_key,
    timestamp_key,
)
from app.queries.rows import BookRow
from app.queries.search import clean_search

T = TypeVar("T")
_QUERY = "websearch_to_tsquery('english'::regconfig, {q}::text)"


class BookOrder(enum.StrEnum):
    NAME = "NAME"
    PRICE = "PRICE"
    RATING = "RATING"
    NEWEST = "NEWEST"  # newest first; descending turns it round
    RELEVANCE = "RELEVANCE"  # best match first; needs a search


@dataclass(frozen=True, kw_only=True)
class BookFilter:
    """Every condition is optional; an empty id list matches nothing."""

    min_price: Decimal | None = None
    max_price: Decimal | None = None
    category_ids: Sequence[str] | None = None
    publisher_ids: Sequence[str] | None = None
    author_ids: Sequence[str] | None = None
    status: str | None = None


@dataclass(frozen=True)
class _Sort:
    expression: str  # over read.book_view; {q} is the search argument
    sql_type: str
    descending: bool  # the natural direction
    dump: Callable[[Any], Any]
    parse: Callable[[Any], Any]


_SORTS = {
    BookOrder.NAME: _Sort("name", "text", False, str, text_key),
    BookOrder.PRICE: _Sort("price", "numeric", False, str, decimal_key),
    BookOrder.RATING: _Sort("average_rating", "float8", False, float, number_key),
    BookOrder.NEWEST: _Sort("created_at", "timestamptz", True, dt.datetime.isoformat, timestamp_key),
    BookOrder.RELEVANCE: _Sort(f"ts_rank(search, {_QUERY})", "real", True, float, number_key),
}


class BookListing:
    """The SQL of one `books` request, built from validated input."""

    def __init__(
        self,
        *,
        search: str | None,
        filter: BookFilter | None,
        order_by: BookOrder | None,
        descending: bool,
        columns: Sequence[str] = BookRow._fields,
    ) -> None:
        if columns[0] != "id":
            raise ValueError("a listing's first column is its id")
        self.columns, self.width = ", ".join(columns), len(columns)
        self.args: list[Any] = []
        self.conditions: list[str] = ["TRUE"]
        self.search = clean_search(search)
        self.order = order_by or (BookOrder.RELEVANCE if self.search else BookOrder.NAME)
        if self.order is BookOrder.RELEVANCE and self.search is None:
            raise ValidationError.single("orderBy", "RELEVANCE needs a search.")
        self.sort = _SORTS[self.order]
        self.descending = self.sort.descending != descending
        self._query_arg = ""
        if self.search is not None:
            self._query_arg = _QUERY.format(q=self._arg(self.search))
            self.conditions.append(f"search @@ {self._query_arg}")
        self._add_filter(filter or BookFilter())

    @property
    def ordering(self) -> str:
        """Name what a cursor is valid for: the sort order and its direction."""
        return f"{self.order}:{'desc' if self.descending else 'asc'}"

    @property
    def key_expression(self) -> str:
        return self.sort.expression.format(q=self._query_arg)

    def count_sql(self) -> str:
        return f"SELECT count(*) FROM read.book_view WHERE {' AND '.join(self.conditions)}"

    def page_sql(self, first: int, after: str | None) -> tuple[str, list[Any]]:
        """Return the page query (first + 1 rows after the cursor) and its arguments."""
        args, conditions = list(self.args), list(self.conditions)
        if after is not None:
            key, row_id = decode_cursor(after, self.ordering, self.sort.parse)
            args += [key, row_id]
            op = "<" if self.descending else ">"
            sql_type = self.sort.sql_type
            conditions.append(
                f"({self.key_expression}, id) {op} (${len(args) - 1}::{sql_type}, ${len(args)}::uuid)"
            )
        direction = "DESC" if self.descending else "ASC"
        sql = (
            f"SELECT {self.columns}, {self.key_expression} AS sort_key FROM read.book_view "
            f"WHERE {' AND '.join(conditions)} "
            f"ORDER BY {self.key_expression} {direction}, id {direction} LIMIT {first + 1}"
        )
        return sql, args

    def page_and_count_sql(self, first: int, after: str | None) -> tuple[str, list[Any]]:
        """Return one query for the page and the count of every match, and its arguments.

        Each row carries `total_count`; an empty page is one row of NULLs with the count.
        """
        sql, args = self.page_sql(first, after)
        direction = "DESC" if self.descending else "ASC"
        combined = (
            f"SELECT page.*, counted.total_count FROM ({self.count_sql()}) AS counted(total_count) "
            f"LEFT JOIN ({sql}) AS page ON true ORDER BY page.sort_key {direction}, page.id {direction}"
        )
        return combined, args

    def edges(self, records: Sequence[asyncpg.Record], row: Callable[[asyncpg.Record], T]) -> list[Edge[T]]:
        """The page's records as edges: each row at its position in this listing."""
        ordering, dump, key = self.ordering, self.sort.dump, self.width  # once per page, not once per row
        # By index, not by name: `id` is every listing's first column, the sort key follows the columns.
        return [Edge((ordering, dump(r[key]), str(r[0])), row(r)) for r in records]

    def _arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def _add_filter(self, f: BookFilter) -> None:
        errors: list[FieldError] = []
        for field, column, value in (("minPrice", ">=", f.min_price), ("maxPrice", "<=", f.max_price)):
            if value is None:
                continue
            if not value.is_finite():
                errors.append(FieldError(f"filter.{field}", "Must be a number."))
            else:
                self.conditions.append(f"price {column} {self._arg(value)}::numeric")
        self._add_ids(errors, "categoryIds", f.category_ids, "category_id = ANY({}::uuid[])")
        self._add_ids(errors, "publisherIds", f.publisher_ids, "publisher_id = ANY({}::uuid[])")
        self._add_ids(errors, "authorIds", f.author_ids, "author_ids && {}::uuid[]")
        if f.status is not None:
            if f.status in tuple(BookStatus):
                self.conditions.append(f"status = {self._arg(str(f.status))}")
            else:
                errors.append(FieldError("filter.status", BookStatus.one_of()))
        if errors:
            raise ValidationError(errors)

    def _add_ids(
        self, errors: list[FieldError], field: str, ids: Sequence[str] | None, condition: str
    ) -> None:
        if ids is None:
            return
        if entity_ids(ids, errors, f"filter.{field}"):
            self.conditions.append(condition.format(self._arg(list(ids))))
