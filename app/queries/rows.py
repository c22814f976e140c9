"""The rows catalog queries return: plain frozen dataclasses read from the read.* views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import asyncpg

from app.domain.catalog.status import BookStatus

AUTHOR_COLUMNS = "id, name, version, created_at, updated_at"
CATEGORY_COLUMNS = "id, name, version, book_count"
PUBLISHER_COLUMNS = "id, name, version"


class BookRow(NamedTuple):
    """A book as `read.book_view` holds it. A NamedTuple, where the other rows are frozen dataclasses: a
    page builds 21 of them per request, and a tuple is built in 1.1 µs where the dataclass took 4.0
    (`bench/rows.py`). It is as immutable and as typed; it also compares equal to a plain tuple of the
    same values, which no caller does."""

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
        """The row of a record of BOOK_COLUMNS, in their order (book_reader of every column)."""
        return _WHOLE(r)


BOOK_COLUMNS = ", ".join(BookRow._fields)
_new_tuple = tuple.__new__  # a NamedTuple's own __new__, without its keyword handling
_STATUSES = {status.value: status for status in BookStatus}


def _status(value: str) -> BookStatus:
    return _STATUSES.get(value) or BookStatus(value)  # ValueError for an unknown one


def _ids(values: list[Any]) -> tuple[str, ...]:
    return tuple(map(str, values))


# How a column's value becomes the field's; a column not named here is taken as it is.
_FIELD_OF_COLUMN: dict[str, Callable[[Any], Any]] = {
    "id": str,
    "status": _status,
    "category_id": str,
    "publisher_id": str,
    "author_ids": _ids,
    "author_names": tuple,
}
BookReader = Callable[[asyncpg.Record], BookRow]


def book_columns(fields: Collection[str] | None) -> tuple[str, ...]:
    """The columns of `fields` (BookRow's names) in BookRow's order, `id` always among them; every
    column for None."""
    if fields is None:
        return BookRow._fields
    return tuple(name for name in BookRow._fields if name == "id" or name in fields)


@lru_cache(maxsize=256)
def book_reader(columns: tuple[str, ...]) -> BookReader:
    """A BookRow from a record of `columns` (book_columns' order; its first columns, by index) and nothing
    else: every other field is None, so a row read this way serves only a request that reads none of those.

    A page whose request reads five of the seventeen columns decodes five: asyncpg's decoding of the
    others (timestamps, arrays, numerics) was about 2.8 µs of a page's 10 µs per row."""
    # Written out once per set of columns, as namedtuple writes its methods: one tuple display of
    # BookRow's fields in order, each the record's value at the column's index (converted where
    # _FIELD_OF_COLUMN converts it) or None.
    names: dict[str, Any] = {"new": _new_tuple, "BookRow": BookRow}
    values = []
    for field in BookRow._fields:
        if field not in columns:
            values.append("None")
            continue
        value, convert = f"r[{columns.index(field)}]", _FIELD_OF_COLUMN.get(field)
        if convert is not None:
            names[f"convert_{field}"] = convert
            value = f"(None if {value} is None else convert_{field}({value}))"
        values.append(value)
    exec(f"def read(r):\n    return new(BookRow, ({', '.join(values)}))", names)  # numbers and names only
    read: BookReader = names["read"]
    return read


_WHOLE = book_reader(BookRow._fields)


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
