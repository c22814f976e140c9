"""DataLoaders: nested lookups batch into one read-model query per kind and tick (no N+1)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from app.queries.paging import Page
from app.queries.rows import AuthorRow, BookRow, CategoryRow, PublisherRow

if TYPE_CHECKING:
    from app.queries.catalog import CatalogQueries

AuthorBooksKey = tuple[str, int, str | None]  # (author id, first, after)


class Loaders:
    """One set per request; websocket contexts pass cache=False so each event sees fresh rows."""

    def __init__(self, catalog: CatalogQueries, *, cache: bool = True) -> None:
        self.book: DataLoader[str, BookRow | None] = DataLoader(catalog.books_by_ids, cache=cache)
        self.author: DataLoader[str, AuthorRow | None] = DataLoader(catalog.authors_by_ids, cache=cache)
        self.category: DataLoader[str, CategoryRow | None] = DataLoader(
            catalog.categories_by_ids, cache=cache
        )
        self.publisher: DataLoader[str, PublisherRow | None] = DataLoader(
            catalog.publishers_by_ids, cache=cache
        )

        async def books_by_author(keys: list[AuthorBooksKey]) -> list[Page[BookRow] | BaseException]:
            # First pages (the usual nested case) are batched per page size; a page after a cursor is
            # read on its own, and a bad cursor fails only its own key.
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

        self.books_by_author: DataLoader[AuthorBooksKey, Page[BookRow]] = DataLoader(
            books_by_author, cache=cache
        )
