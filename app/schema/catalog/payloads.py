"""Catalog mutation results: `<Verb><Noun>Success` plus the typed errors, as one union per mutation.

Each success payload's entity field is read-your-writes: it waits until the catalog read model has
passed the mutation's position, then loads the row.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Self, TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from app.commands.results import CommandResult
from app.schema import described
from app.schema.catalog.types import Author, Book, Category, Publisher
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.positions import Position

R = TypeVar("R")

RYW = "The entity as the read model holds it once it has applied this change (waits, bounded)."


async def _fresh_row(info: Info, loader: DataLoader[str, R | None], key: str, position: Position) -> R | None:
    """Wait until the read model passed `position`, then load `key` anew (not from this request's cache)."""
    await caught_up(info, position)
    with contextlib.suppress(KeyError):  # strawberry's clear() raises for a key never loaded
        loader.clear(key)
    return await loader.load(key)


async def fresh_author(info: Info, author_id: str, position: Position) -> Author | None:
    row = await _fresh_row(info, info.context.loaders.author, author_id, position)
    return None if row is None else Author.from_row(row)


async def fresh_category(info: Info, category_id: str, position: Position) -> Category | None:
    row = await _fresh_row(info, info.context.loaders.category, category_id, position)
    return None if row is None else Category.from_row(row)


async def fresh_publisher(info: Info, publisher_id: str, position: Position) -> Publisher | None:
    row = await _fresh_row(info, info.context.loaders.publisher, publisher_id, position)
    return None if row is None else Publisher.from_row(row)


async def fresh_book(info: Info, book_id: str, position: Position) -> Book | None:
    row = await _fresh_row(info, info.context.loaders.book, book_id, position)
    return None if row is None else Book.from_row(row)


@strawberry.type
class AuthorPayload:
    author_id: strawberry.ID
    position: str
    at: strawberry.Private[Position]

    @classmethod
    def of(cls, done: CommandResult) -> Self:
        return cls(author_id=strawberry.ID(done.entity_id), position=str(done.position), at=done.position)

    @described.field(RYW)
    async def author(self, info: Info) -> Author | None:
        return await fresh_author(info, str(self.author_id), self.at)


@strawberry.type
class CategoryPayload:
    category_id: strawberry.ID
    position: str
    at: strawberry.Private[Position]

    @classmethod
    def of(cls, done: CommandResult) -> Self:
        return cls(category_id=strawberry.ID(done.entity_id), position=str(done.position), at=done.position)

    @described.field(RYW)
    async def category(self, info: Info) -> Category | None:
        return await fresh_category(info, str(self.category_id), self.at)


@strawberry.type
class PublisherPayload:
    publisher_id: strawberry.ID
    position: str
    at: strawberry.Private[Position]

    @classmethod
    def of(cls, done: CommandResult) -> Self:
        return cls(publisher_id=strawberry.ID(done.entity_id), position=str(done.position), at=done.position)

    @described.field(RYW)
    async def publisher(self, info: Info) -> Publisher | None:
        return await fresh_publisher(info, str(self.publisher_id), self.at)


@strawberry.type
class BookPayload:
    book_id: strawberry.ID
    position: str
    at: strawberry.Private[Position]

    @classmethod
    def of(cls, done: CommandResult) -> Self:
        return cls(book_id=strawberry.ID(done.entity_id), position=str(done.position), at=done.position)

    @described.field(RYW)
    async def book(self, info: Info) -> Book | None:
        return await fresh_book(info, str(self.book_id), self.at)


# The payload bases are not in the schema themselves; each mutation has its own success type.
@strawberry.type
class CreateAuthorSuccess(AuthorPayload):
    pass


@strawberry.type
class RenameAuthorSuccess(AuthorPayload):
    pass


@strawberry.type
class DeleteAuthorSuccess(AuthorPayload):
    pass


@strawberry.type
class CreateCategorySuccess(CategoryPayload):
    pass


@strawberry.type
class RenameCategorySuccess(CategoryPayload):
    pass


@strawberry.type
class DeleteCategorySuccess(CategoryPayload):
    pass


@strawberry.type
class CreatePublisherSuccess(PublisherPayload):
    pass


@strawberry.type
class RenamePublisherSuccess(PublisherPayload):
    pass


@strawberry.type
class DeletePublisherSuccess(PublisherPayload):
    pass


@strawberry.type
class CreateBookSuccess(BookPayload):
    pass


@strawberry.type
class UpdateBookSuccess(BookPayload):
    pass


@strawberry.type
class DeleteBookSuccess(BookPayload):
    pass


CreateAuthorResult = Annotated[CreateAuthorSuccess | Errors, strawberry.union("CreateAuthorResult")]
RenameAuthorResult = Annotated[RenameAuthorSuccess | Errors, strawberry.union("RenameAuthorResult")]
DeleteAuthorResult = Annotated[DeleteAuthorSuccess | Errors, strawberry.union("DeleteAuthorResult")]
CreateCategoryResult = Annotated[CreateCategorySuccess | Errors, strawberry.union("CreateCategoryResult")]
RenameCategoryResult = Annotated[RenameCategorySuccess | Errors, strawberry.union("RenameCategoryResult")]
DeleteCategoryResult = Annotated[DeleteCategorySuccess | Errors, strawberry.union("DeleteCategoryResult")]
CreatePublisherResult = Annotated[CreatePublisherSuccess | Errors, strawberry.union("CreatePublisherResult")]
RenamePublisherResult = Annotated[RenamePublisherSuccess | Errors, strawberry.union("RenamePublisherResult")]
DeletePublisherResult = Annotated[DeletePublisherSuccess | Errors, strawberry.union("DeletePublisherResult")]
CreateBookResult = Annotated[CreateBookSuccess | Errors, strawberry.union("CreateBookResult")]
UpdateBookResult = Annotated[UpdateBookSuccess | Errors, strawberry.union("UpdateBookResult")]
DeleteBookResult = Annotated[DeleteBookSuccess | Errors, strawberry.union("DeleteBookResult")]
