"""Rating read functions over read.feedback_view: a book's feedback, paged, and feedback by id."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.db import unavailable_when_down
from app.domain.fields import check_id
from app.ids import is_id
from app.queries.paging import (
    Edge,
    Page,
    check_first,
    decode_cursor,
    make_page,
    timestamp_key,
    whole_key,
)

FEEDBACK_COLUMNS = "id, book_id, first_name, last_name, comment, rating, created_at"


class FeedbackOrder(enum.StrEnum):
    NEWEST = "NEWEST"  # newest first
    RATING = "RATING"  # highest rating first, then newest (ids are time-ordered)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRow:
    id: str
    book_id: str
    first_name: str
    last_name: str
    comment: str | None
    rating: int
    created_at: dt.datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> FeedbackRow:
        return cls(
            id=str(r["id"]),
            book_id=str(r["book_id"]),
            first_name=r["first_name"],
            last_name=r["last_name"],
            comment=r["comment"],
            rating=r["rating"],
            created_at=r["created_at"],
        )


@dataclass(frozen=True)
class _Sort:
    column: str
    sql_type: str
    dump: Callable[[Any], Any]
    parse: Callable[[Any], Any]


# Both orders run from the largest key down, with the id breaking ties the same way.
_SORTS = {
    FeedbackOrder.NEWEST: _Sort("created_at", "timestamptz", dt.datetime.isoformat, timestamp_key),
    FeedbackOrder.RATING: _Sort("rating", "integer", int, whole_key),
}

_COUNT = "SELECT count(*) FROM read.feedback_view WHERE book_id = $1"


class RatingQueries:
    """Read the rating view; never touches aggregates or events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @unavailable_when_down
    async def list_feedbacks(
        self,
        book_id: str,
        *,
        first: int = 20,
        after: str | None = None,
        order_by: FeedbackOrder = FeedbackOrder.NEWEST,
    ) -> Page[FeedbackRow]:
        """Return one page of a book's feedback; an unknown book has none."""
        check_first(first)
        book = check_id("bookId", book_id)
        sort, ordering = _SORTS[order_by], f"feedback:{order_by}"
        args: list[Any] = [book]
        condition = "book_id = $1"
        if after is not None:
            key, row_id = decode_cursor(after, ordering, sort.parse)
            args += [key, row_id]
            condition += f" AND ({sort.column}, id) < ($2::{sort.sql_type}, $3::uuid)"
        sql = (
            f"SELECT {FEEDBACK_COLUMNS} FROM read.feedback_view WHERE {condition} "
            f"ORDER BY {sort.column} DESC, id DESC LIMIT {first + 1}"
        )
        async with self._pool.acquire() as conn:
            records = await conn.fetch(sql, *args)
            total = await conn.fetchval(_COUNT, book)
        positions = [(ordering, sort.dump(r[sort.column]), str(r["id"])) for r in records]
        edges = [
            Edge(position, FeedbackRow.from_record(r)) for position, r in zip(positions, records, strict=True)
        ]
        return make_page(edges, first, after=after, total_count=total)

    @unavailable_when_down
    async def feedbacks_by_ids(self, ids: Sequence[str]) -> list[FeedbackRow | None]:
        """Return feedback in input order; None where an id is unknown, deleted or malformed."""
        canonical = {i: str(uuid.UUID(i)) for i in ids if isinstance(i, str) and is_id(i)}
        found: dict[str, FeedbackRow] = {}
        if canonical:
            sql = f"SELECT {FEEDBACK_COLUMNS} FROM read.feedback_view WHERE id = ANY($1::uuid[])"
            records = await self._pool.fetch(sql, sorted(set(canonical.values())))
            found = {str(r["id"]): FeedbackRow.from_record(r) for r in records}
        return [found.get(canonical.get(i, "")) for i in ids]


__all__ = ["FeedbackOrder", "FeedbackRow", "Page", "RatingQueries"]
