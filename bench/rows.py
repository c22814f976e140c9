"""CPU time of turning one asyncpg record into a book row: the row class against SQLModel models.

Usage:
    BOOKWORM_DATABASE_URL=postgresql://... python bench/rows.py [--rows 100000] [--repeats 5]

Needs PostgreSQL only (one query makes a real record with read.book_view's column types; no table is
read or written). SQLModel is not a project dependency: install it beside the project to add its rows
(`pip install sqlmodel`, or `pip install --target DIR sqlmodel` and DIR on PYTHONPATH); without it only
the row class is measured (a NamedTuple since 2026-12-07, a slots dataclass before). Every row is built
from the same record with the same conversions (uuid to str, arrays to tuples, the status to BookStatus)
as `BookRow.from_record`; each case is timed with time.process_time, best of --repeats. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg

from app.domain.catalog.status import BookStatus
from app.queries.rows import BookRow
from app.schema.catalog.types import Book

# One row of read.book_view, with its column types, named as BOOK_COLUMNS names them.
_RECORD = """
SELECT $1::uuid AS id, 'The Left Hand of Darkness'::text AS name, 'Genly Ai on Gethen.'::text AS description,
    12.50::numeric(12, 2) AS price, 9.99::numeric(12, 2) AS price_sale, 'IN_STOCK'::text AS status,
    $2::uuid AS category_id, 'Science fiction'::text AS category_name,
    $3::uuid AS publisher_id, 'Ace Books'::text AS publisher_name,
    ARRAY[$4::uuid, $5::uuid] AS author_ids, ARRAY['Ursula K. Le Guin', 'Another Author'] AS author_names,
    4.25::float8 AS average_rating, 8 AS total_reviews, 3 AS version,
    now() AS created_at, now() AS updated_at
"""

Make = Callable[[asyncpg.Record], object]


async def fetch_record(url: str) -> asyncpg.Record:
    """Return one record shaped like a read.book_view row."""
    conn = await asyncpg.connect(url)
    try:
        record = await conn.fetchrow(_RECORD, *(uuid.uuid4() for _ in range(5)))
    finally:
        await conn.close()
    assert record is not None
    return record


def fields(r: asyncpg.Record) -> dict[str, Any]:
    """Return BookRow's fields from a record, converted exactly as BookRow.from_record converts them."""
    return {
        "id": str(r["id"]),
        "name": r["name"],
        "description": r["description"],
        "price": r["price"],
        "price_sale": r["price_sale"],
        "status": BookStatus(r["status"]),
        "category_id": str(r["category_id"]),
        "category_name": r["category_name"],
        "publisher_id": str(r["publisher_id"]),
        "publisher_name": r["publisher_name"],
        "author_ids": tuple(str(a) for a in r["author_ids"]),
        "author_names": tuple(r["author_names"]),
        "average_rating": r["average_rating"],
        "total_reviews": r["total_reviews"],
        "version": r["version"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
    }


def sqlmodel_cases() -> list[tuple[str, Make]]:
    """Return the SQLModel ways to build the row; none when SQLModel is not installed."""
    try:
        from sqlalchemy import ARRAY, Column, String
        from sqlmodel import Field, SQLModel
    except ImportError:
        return []

    class BookColumns(SQLModel):
        name: str
        description: str | None
        price: Decimal
        price_sale: Decimal | None
        status: BookStatus
        category_name: str
        publisher_name: str
        average_rating: float
        total_reviews: int
        version: int
        created_at: dt.datetime
        updated_at: dt.datetime

    class BookRead(BookColumns):
        id: str
        category_id: str
        publisher_id: str
        author_ids: tuple[str, ...]
        author_names: tuple[str, ...]

    class BookFromRecord(BookColumns):
        """Lets pydantic convert the record itself: ids stay UUIDs, arrays and the status are coerced."""

        id: uuid.UUID
        category_id: uuid.UUID
        publisher_id: uuid.UUID
        author_ids: tuple[uuid.UUID, ...]
        author_names: tuple[str, ...]

    class BookTable(BookColumns, table=True):
        __tablename__ = "bench_book"
        id: str = Field(primary_key=True)
        category_id: str
        publisher_id: str
        author_ids: tuple[str, ...] = Field(sa_column=Column(ARRAY(String)))
        author_names: tuple[str, ...] = Field(sa_column=Column(ARRAY(String)))

    return [
        ("SQLModel read model, validated", lambda r: BookRead(**fields(r))),
        ("SQLModel read model, model_construct", lambda r: BookRead.model_construct(**fields(r))),
        ("SQLModel model_validate(dict(record))", lambda r: BookFromRecord.model_validate(dict(r))),
        ("SQLModel table=True", lambda r: BookTable(**fields(r))),
    ]


def measure(make: Make, record: asyncpg.Record, rows: int, repeats: int) -> float:
    """Return the best CPU microseconds per row over `repeats` runs of `rows` rows."""
    make(record)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rows):
            make(record)
        best = min(best, time.process_time() - start)
    return best / rows * 1e6


def retained_bytes(make: Make, record: asyncpg.Record, rows: int = 1_000) -> float:
    """Return the bytes allocated per row while `rows` rows are kept (shared values counted once)."""
    tracemalloc.start()
    kept = [make(record) for _ in range(rows)]
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("BOOKWORM_DATABASE_URL")
    if not url:
        raise SystemExit("set BOOKWORM_DATABASE_URL to a PostgreSQL server")
    record = asyncio.run(fetch_record(url))
    cases: list[tuple[str, Make]] = [
        ("dict(record): copying the record only", dict),
        ("BookRow.from_record (a NamedTuple)", BookRow.from_record),
        ("BookRow(**fields) (as the SQLModel rows)", lambda r: BookRow(**fields(r))),
        ("BookRow, then the GraphQL Book", lambda r: Book.from_row(BookRow.from_record(r))),
        *sqlmodel_cases(),
    ]
    timed = [
        (name, measure(make, record, args.rows, args.repeats), retained_bytes(make, record))
        for name, make in cases
    ]
    baseline = next(micros for name, micros, _ in timed if name.startswith("BookRow.from_record"))
    header = f"{'row':<42}{'cpu us/row':>12}{'x row':>13}{'bytes/row':>11}"
    print(f"{args.rows:,} rows per run, best of {args.repeats}")
    print(header)
    print("-" * len(header))
    for name, micros, size in timed:
        print(f"{name:<42}{micros:>12.2f}{micros / baseline:>13.2f}{size:>11.0f}")


if __name__ == "__main__":
    main()
