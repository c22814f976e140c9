"""DataLoaders: nested lookups batch into one read-model query per kind and tick (no N+1)."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from strawberry.dataloader import DataLoader

from app.queries.paging import Page
from app.queries.rows import AuthorRow, BookRow, CategoryRow, PublisherRow

if TYPE_CHECKING:
    from strawberry.types import Info

    from app.queries.catalog import CatalogQueries

AuthorBooksKey = tuple[str, int, str | None]  # (author id, first, after)


class Loaders:
    """One set per request, each loader made on first use; websocket contexts pass cache=False so each
    event sees fresh rows."""

    def __init__(self, catalog: CatalogQueries, *, cache: bool = True) -> None:
        self._catalog = catalog
        self._cache = cache

    @cached_property
    def book(self) -> DataLoader[str, BookRow | None]:
        return DataLoader(self._catalog.books_by_ids, cache=self._cache)

    async def lone_book(self, id: str) -> BookRow | None:
        """The book `id`, read at once: for a load that no other can share a batch with (`sole_root_field`).

        What `book.load` would answer, without its round (a future, a task and a turn of the loop): a
        later load of the same id answers from the same row, as from the loader's cache.
        """
        row = await self._catalog.book_by_id(id)
        if self._cache:
            self.book.prime(id, row)
        return row

    @cached_property
    def author(self) -> DataLoader[str, AuthorRow | None]:
        return DataLoader(self._catalog.authors_by_ids, cache=self._cache)

    @cached_property
    def category(self) -> DataLoader[str, CategoryRow | None]:
        return DataLoader(self._catalog.categories_by_ids, cache=self._cache)

    @cached_property
    def publisher(self) -> DataLoader[str, PublisherRow | None]:
        return DataLoader(self._catalog.publishers_by_ids, cache=self._cache)

    @cached_property
    def books_by_author(self) -> DataLoader[AuthorBooksKey, Page[BookRow]]:
        return DataLoader(self._books_by_author, cache=self._cache)

    async def _books_by_author(self, keys: list[AuthorBooksKey]) -> list[Page[BookRow] | BaseException]:
        # First pages (the usual nested case) are batched per page size; a page after a cursor is read
        # on its own, and a bad cursor fails only its own key.
        catalog = self._catalog
        pages: dict[AuthorBooksKey, Page[BookRow] | BaseException] = {}
        for size in {first for _, first, after in keys if after is None}:
            batch = [k for k in keys if k[1] == size and k[2] is None]
            found = await catalog.first_books_of_authors([k[0] for k in batch], size)
            pages.update(zip(batch, found, strict=True))
        later = [k for k in keys if k[2] is not None]
        found_later = await asyncio.gather(
            *(catalog.books_by_author(a, first=first, after=after) for a, first, after in later),
            return_exceptions=True,
        )
        pages.update(zip(later, found_later, strict=True))
        return [pages[k] for k in keys]


def sole_root_field(info: Info[Any, Any]) -> bool:
    """Tell whether the field `info` resolves is its operation's only root field.

    Then no other load can share its batch: the loads of the fields under it start once it has
    resolved, in batches of their own.
    """
    selections = info.operation.selection_set.selections
    return info.path.prev is None and len(selections) == 1 and isinstance(selections[0], FieldNode)
