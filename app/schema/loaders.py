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
            # The read side pages one author at a time; the pages of one tick run concurrently, and
            # a bad cursor fails only its own key (DataLoader raises a returned exception for that key).
            return await asyncio.gather(
                *(
                    catalog.books_by_author(author_id, first=first, after=after)
                    for author_id, first, after in keys
                ),
                return_exceptions=True,
            )

        self.books_by_author: DataLoader[AuthorBooksKey, Page[BookRow]] = DataLoader(
            books_by_author, cache=cache
        )
