"""Catalog mutation results: `<Verb><Noun>Success` plus the typed errors, as one union per mutation.

Each success payload's entity field is read-your-writes: it waits until the catalog read model has
passed the mutation's position, then loads the row.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import strawberry

from app.schema import described
from app.schema.catalog.types import Author, Book, Category, Publisher
from app.schema.context import Info
from app.schema.errors import MutationErrors as Errors
from app.schema.payloads import Changed, fresh

RYW = "The entity as the read model holds it once it has applied this change (waits, bounded)."


@strawberry.type
class AuthorPayload(Changed):
    ID_FIELD: ClassVar[str] = "author_id"
    author_id: strawberry.ID

    @described.field(RYW)
    async def author(self, info: Info) -> Author | None:
        return await fresh(info, info.context.loaders.author, str(self.author_id), self.at, Author.from_row)


@strawberry.type
class CategoryPayload(Changed):
    ID_FIELD: ClassVar[str] = "category_id"
    category_id: strawberry.ID

    @described.field(RYW)
    async def category(self, info: Info) -> Category | None:
        loader = info.context.loaders.category
        return await fresh(info, loader, str(self.category_id), self.at, Category.from_row)


@strawberry.type
class PublisherPayload(Changed):
    ID_FIELD: ClassVar[str] = "publisher_id"
    publisher_id: strawberry.ID

    @described.field(RYW)
    async def publisher(self, info: Info) -> Publisher | None:
        loader = info.context.loaders.publisher
        return await fresh(info, loader, str(self.publisher_id), self.at, Publisher.from_row)


@strawberry.type
class BookPayload(Changed):
    ID_FIELD: ClassVar[str] = "book_id"
    book_id: strawberry.ID

    @described.field(RYW)
    async def book(self, info: Info) -> Book | None:
        return await fresh(info, info.context.loaders.book, str(self.book_id), self.at, Book.from_row)


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
