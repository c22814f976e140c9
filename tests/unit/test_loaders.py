"""A root `book(id)` alone in its operation is read at once; any other load still batches and caches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import pytest
import strawberry

from app.domain.catalog.status import BookStatus
from app.queries.catalog import CatalogQueries
from app.queries.rows import BookRow
from app.schema.loaders import Loaders, sole_root_field

KNOWN = "0190c7a8-0000-7000-8000-000000000001"
OTHER = "0190c7a8-0000-7000-8000-000000000002"
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def row(book_id: str) -> BookRow:
    return BookRow(
        id=book_id,
        name=f"Book {book_id[-1]}",
        description=None,
        price=Decimal("9.50"),
        price_sale=None,
        status=BookStatus.IN_STOCK,
        category_id="",
        category_name="",
        publisher_id="",
        publisher_name="",
        author_ids=(),
        author_names=(),
        average_rating=0.0,
        total_reviews=0,
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )


class Shelf:
    """The two catalog reads the loaders make, answering from a dict and keeping each call."""

    def __init__(self, *known: str) -> None:
        self.rows = {book_id: row(book_id) for book_id in known}
        self.calls: list[tuple[str, ...]] = []

    async def books_by_ids(self, ids: Sequence[str]) -> list[BookRow | None]:
        self.calls.append(("books_by_ids", *ids))
        return [self.rows.get(i) for i in ids]

    async def book_by_id(self, book_id: str) -> BookRow | None:
        self.calls.append(("book_by_id", book_id))
        return self.rows.get(book_id)


def loaders(shelf: Shelf, *, cache: bool = True) -> Loaders:
    return Loaders(cast("CatalogQueries", shelf), cache=cache)


async def test_a_lone_book_read_answers_later_loads_of_its_id_as_the_loaders_cache_would() -> None:
    shelf = Shelf(KNOWN)
    found = loaders(shelf)

    assert await found.lone_book(KNOWN) == row(KNOWN)
    assert await found.lone_book(OTHER) is None
    assert await found.book.load(KNOWN) == row(KNOWN)
    assert await found.book.load(OTHER) is None  # not found is an answer too
    assert await found.lone_book(KNOWN) == row(KNOWN)  # with the loader made: read again, and kept
    assert await found.book.load(KNOWN) == row(KNOWN)
    assert shelf.calls == [("book_by_id", KNOWN), ("book_by_id", OTHER), ("book_by_id", KNOWN)]


async def test_without_a_cache_every_load_reads_again() -> None:
    shelf = Shelf(KNOWN)
    fresh = loaders(shelf, cache=False)

    await fresh.lone_book(KNOWN)
    assert await fresh.book.load(KNOWN) == row(KNOWN)
    assert shelf.calls == [("book_by_id", KNOWN), ("books_by_ids", KNOWN)]


@strawberry.type
class Book:
    id: strawberry.ID
    name: str

    @strawberry.field
    async def again(self, info: strawberry.Info) -> Book | None:
        """The same book, loaded again below the root."""
        return await lookup(info, self.id)


async def lookup(info: strawberry.Info, book_id: str) -> Book | None:
    found: Loaders = info.context["loaders"]
    if sole_root_field(info):
        read = await found.lone_book(book_id)
    else:
        read = await found.book.load(book_id)
    return None if read is None else Book(id=strawberry.ID(read.id), name=read.name)


@strawberry.type
class Query:
    @strawberry.field
    async def book(self, info: strawberry.Info, id: strawberry.ID) -> Book | None:
        return await lookup(info, id)


SCHEMA = strawberry.Schema(query=Query)


CASES = [
    ("one root field", f'{{ book(id: "{KNOWN}") {{ name }} }}', [("book_by_id", KNOWN)]),
    (
        "two ids under aliases: one batch",
        f'{{ a: book(id: "{KNOWN}") {{ name }} b: book(id: "{OTHER}") {{ name }} }}',
        [("books_by_ids", KNOWN, OTHER)],
    ),
    (
        "one id under two aliases: one read",
        f'{{ a: book(id: "{KNOWN}") {{ name }} b: book(id: "{KNOWN}") {{ id }} }}',
        [("books_by_ids", KNOWN)],
    ),
    (
        "a root field beside it",
        f'{{ book(id: "{KNOWN}") {{ name }} __typename }}',
        [("books_by_ids", KNOWN)],
    ),
    (
        "root fields in a fragment",
        f'{{ ...Both }} fragment Both on Query {{ book(id: "{KNOWN}") {{ name }} }}',
        [("books_by_ids", KNOWN)],
    ),
    (
        "an inline fragment",
        f'{{ ... on Query {{ book(id: "{KNOWN}") {{ name }} }} }}',
        [("books_by_ids", KNOWN)],
    ),
    (
        "the same id again below: the first read answers it",
        f'{{ book(id: "{KNOWN}") {{ again {{ name again {{ id }} }} }} }}',
        [("book_by_id", KNOWN)],
    ),
]


@pytest.mark.parametrize(("query", "reads"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
async def test_only_a_lone_root_book_skips_the_loader(query: str, reads: list[tuple[str, ...]]) -> None:
    shelf = Shelf(KNOWN, OTHER)
    context: dict[str, Any] = {"loaders": loaders(shelf)}

    result = await SCHEMA.execute(query, context_value=context)

    assert result.errors is None
    assert shelf.calls == reads


async def test_a_lone_root_book_answers_as_the_loader_does() -> None:
    lone, batched = Shelf(KNOWN), Shelf(KNOWN)
    for id_ in (KNOWN, OTHER):
        one = f'{{ book(id: "{id_}") {{ id name again {{ name }} }} }}'
        two = f'{{ book(id: "{id_}") {{ id name again {{ name }} }} __typename }}'
        alone = await SCHEMA.execute(one, context_value={"loaders": loaders(lone)})
        beside = await SCHEMA.execute(two, context_value={"loaders": loaders(batched)})
        assert alone.errors is None and beside.errors is None
        assert beside.data is not None
        assert alone.data == {"book": beside.data["book"]}
