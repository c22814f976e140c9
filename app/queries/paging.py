"""Keyset paging: opaque cursors (sort key + id), `first` bounds, and the Page of results."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.domain.errors import ValidationError
from app.ids import is_id

T = TypeVar("T")
MAX_FIRST = 100


@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paged list, with what a Relay connection needs."""

    items: tuple[Edge[T], ...]
    has_next_page: bool
    # Forward-only paging: there is something before the page exactly when it starts after a cursor.
    has_previous_page: bool
    total_count: int

    @property
    def start_cursor(self) -> str | None:
        return self.items[0].cursor if self.items else None

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1].cursor if self.items else None

    @property
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.items]


def check_first(first: int) -> None:
    """Refuse a page size outside 1..MAX_FIRST."""
    if not 1 <= first <= MAX_FIRST:
        raise ValidationError.single("first", f"Must be between 1 and {MAX_FIRST}.")


def encode_cursor(ordering: str, key: Any, row_id: str) -> str:
    """Return the opaque cursor of a row: its ordering, sort key and id."""
    raw = json.dumps([ordering, key, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str, parse_key: Callable[[Any], Any]) -> tuple[Any, str]:
    """Return (sort key, id) of a cursor made for `ordering`; anything else is a ValidationError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, key, row_id = json.loads(raw)
        if made_for != ordering or not isinstance(row_id, str) or not is_id(row_id):
            raise ValueError(cursor)
        return parse_key(key), row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, ArithmeticError):
        raise ValidationError.single("after", "Not a cursor of this list.") from None


def make_page(edges: Sequence[Edge[T]], first: int, *, after: str | None, total_count: int) -> Page[T]:
    """Build a page from up to first + 1 fetched edges (the extra one only tells there is more)."""
    return Page(tuple(edges[:first]), len(edges) > first, after is not None, total_count)


@dataclass(frozen=True, slots=True)
class Keyset:
    """The SQL of one keyset-paged listing: rows of `source` sorted by (`key`, id)."""

    source: str  # a view or table
    columns: str
    key: str  # the sort column
    key_type: str  # its SQL type, to cast the cursor's key to
    descending: bool = False

    def count_sql(self, conditions: Sequence[str]) -> str:
        """Return the count of every row that matches `conditions` (placeholders $1..)."""
        return f"SELECT count(*) FROM {self.source} WHERE {' AND '.join(conditions) or 'TRUE'}"

    def page_sql(
        self, conditions: Sequence[str], args: Sequence[Any], after: tuple[Any, str] | None, first: int
    ) -> tuple[str, list[Any]]:
        """Return the query of one page after the cursor's (key, id), and its arguments."""
        where, page_args = list(conditions), list(args)
        if after is not None:
            page_args += list(after)
            sign = "<" if self.descending else ">"
            n = len(page_args)
            where.append(f"({self.key}, id) {sign} (${n - 1}::{self.key_type}, ${n}::uuid)")
        direction = " DESC" if self.descending else ""
        sql = (
            f"SELECT {self.columns} FROM {self.source} WHERE {' AND '.join(where) or 'TRUE'} "
            f"ORDER BY {self.key}{direction}, id{direction} LIMIT {first + 1}"
        )
        return sql, page_args
