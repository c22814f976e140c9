"""Keyset paging: opaque cursors (sort key + id), `first` bounds, and the Page of results."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar

from app.domain.errors import ValidationError
from app.domain.fields import is_storable
from app.ids import is_id

T = TypeVar("T")
MAX_FIRST = 100
# Far above any cursor Bookworm makes (a sort key of at most a few hundred characters, and an id).
MAX_CURSOR_LENGTH = 2048
MAX_TEXT_KEY = 1000
# Beyond the largest finite float4 (`real`, what ts_rank returns): PostgreSQL could not take it back.
MAX_NUMBER_KEY = 3.4e38
_DECIMAL_KEY = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")


# Where a row sits in a listing: the ordering, the row's sort key as a cursor writes it, and its id.
Position = tuple[str, Any, str]


class Edge(NamedTuple, Generic[T]):
    """A row of a page and its position; the cursor is encoded only when asked for (a page's query
    seldom asks for every row's, and encoding them all was about 5 % of `books(first: 20)`). A tuple,
    as BookRow is: a page builds one per row."""

    position: Position
    node: T

    @property
    def cursor(self) -> str:
        return encode_cursor(*self.position)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paged list, with what a Relay connection needs."""

    items: tuple[Edge[T], ...]
    has_next_page: bool
    # Forward-only paging: there is something before the page exactly when it starts after a cursor.
    has_previous_page: bool
    total_count: int | None  # None: not counted, as the caller did not ask for it (it costs a scan)

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
    """Return (sort key, id) of a cursor made for `ordering`; anything else is a ValidationError.

    `parse_key` must refuse (with ValueError or TypeError) any key PostgreSQL could not compare.
    """
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # No NaN or Infinity: the server never writes them, and PostgreSQL sorts them apart.
        made_for, key, row_id = json.loads(raw, parse_constant=_refuse_constant)
        if made_for != ordering or not isinstance(row_id, str) or not is_id(row_id):
            raise ValueError(cursor)
        return parse_key(key), row_id
    # RecursionError: json.loads of a deeply nested array such as [[[[...]]]].
    except (ValueError, TypeError, binascii.Error, ArithmeticError, RecursionError):
        raise ValidationError.single("after", "Not a cursor of this list.") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def text_key(key: Any) -> str:
    """A text sort key that PostgreSQL can compare: no U+0000, no lone surrogate, bounded."""
    if not isinstance(key, str) or len(key) > MAX_TEXT_KEY or not is_storable(key):
        raise TypeError("not a text key")
    return key


def number_key(key: Any) -> float:
    """A float sort key: finite, and within what a float4 column can hold."""
    if not isinstance(key, int | float) or isinstance(key, bool):
        raise TypeError("not a number key")
    # Compared before float(): an int of 400 digits would overflow it. NaN compares false.
    if not -MAX_NUMBER_KEY <= key <= MAX_NUMBER_KEY:
        raise ValueError("not a finite number in range")
    return float(key)


def whole_key(key: Any) -> int:
    """An integer sort key within PostgreSQL's integer."""
    if not isinstance(key, int) or isinstance(key, bool) or not -(2**31) <= key < 2**31:
        raise TypeError("not an integer key")
    return key


def decimal_key(key: Any) -> Decimal:
    """A numeric sort key written as plain digits (no exponent, NaN or Infinity)."""
    if not isinstance(key, str) or _DECIMAL_KEY.fullmatch(key) is None:
        raise TypeError("not a decimal key")
    return Decimal(key)


def timestamp_key(key: Any) -> dt.datetime:
    """A timestamptz sort key: ISO-8601 with an offset, and still a date once moved to UTC."""
    if not isinstance(key, str) or len(key) > 64:
        raise TypeError("not a timestamp key")
    parsed = dt.datetime.fromisoformat(key)
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed.astimezone(dt.UTC)  # OverflowError (an ArithmeticError) past year 1 or 9999


def make_page(edges: Sequence[Edge[T]], first: int, *, after: str | None, total_count: int | None) -> Page[T]:
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
