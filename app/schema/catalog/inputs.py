"""Catalog mutation and filter inputs."""

from __future__ import annotations

import decimal

import strawberry

from app.domain.catalog.status import BookStatus


@strawberry.input
class CreateAuthorInput:
    name: str
    idempotency_key: str | None = None


@strawberry.input
class RenameAuthorInput:
    id: strawberry.ID
    name: str
    idempotency_key: str | None = None


@strawberry.input
class DeleteAuthorInput:
    id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class CreateCategoryInput:
    name: str
    idempotency_key: str | None = None


@strawberry.input
class RenameCategoryInput:
    id: strawberry.ID
    name: str
    idempotency_key: str | None = None


@strawberry.input
class DeleteCategoryInput:
    id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class CreatePublisherInput:
    name: str
    idempotency_key: str | None = None


@strawberry.input
class RenamePublisherInput:
    id: strawberry.ID
    name: str
    idempotency_key: str | None = None


@strawberry.input
class DeletePublisherInput:
    id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class CreateBookInput:
    name: str
    description: str | None = None
    price: decimal.Decimal
    price_sale: decimal.Decimal | None = None
    category_id: strawberry.ID
    publisher_id: strawberry.ID
    author_ids: list[strawberry.ID]
    idempotency_key: str | None = None


@strawberry.input(
    description="Only the fields given change; an explicit null clears description or priceSale."
)
class UpdateBookInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price: decimal.Decimal | None = strawberry.UNSET
    price_sale: decimal.Decimal | None = strawberry.UNSET
    category_id: strawberry.ID | None = strawberry.UNSET
    publisher_id: strawberry.ID | None = strawberry.UNSET
    author_ids: list[strawberry.ID] | None = strawberry.UNSET
    status: BookStatus | None = strawberry.UNSET
    expected_version: int | None = None
    idempotency_key: str | None = None


@strawberry.input
class DeleteBookInput:
    id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.input
class BookFilter:
    min_price: decimal.Decimal | None = None
    max_price: decimal.Decimal | None = None
    category_ids: list[strawberry.ID] | None = None
    publisher_ids: list[strawberry.ID] | None = None
    author_ids: list[strawberry.ID] | None = None
    status: BookStatus | None = None
