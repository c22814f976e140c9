"""Book mutations: create, update (only the given fields), soft delete."""

from __future__ import annotations

from typing import Any

import strawberry

from app.domain.catalog import commands
from app.domain.catalog.status import BookStatus
from app.domain.commands import KEEP
from app.domain.errors import FieldError, ValidationError
from app.domain.fields import check_id, raise_if_any
from app.ids import new_id
from app.schema import described
from app.schema.access import require_admin
from app.schema.catalog import inputs, payloads
from app.schema.commands import dispatch
from app.schema.context import Info
from app.schema.ids import id_errors, list_errors

# Fields that updateBook may leave out but never set to null.
REQUIRED_ON_UPDATE = ("name", "price", "category_id", "publisher_id", "author_ids", "status")


def create_command(given: inputs.CreateBookInput) -> commands.CreateBook:
    raise_if_any(
        id_errors("categoryId", given.category_id)
        + id_errors("publisherId", given.publisher_id)
        + list_errors("authorIds", given.author_ids)
    )
    return commands.CreateBook(
        book_id=new_id(),
        name=given.name,
        description=given.description,
        price=given.price,
        price_sale=given.price_sale,
        category_id=given.category_id.lower(),
        publisher_id=given.publisher_id.lower(),
        author_ids=tuple(a.lower() for a in given.author_ids),
    )


def update_command(given: inputs.UpdateBookInput) -> commands.UpdateBook:
    book_id = check_id("id", given.id)
    errors = [
        FieldError(_camel(name), "Cannot be null; leave the field out to keep it.")
        for name in REQUIRED_ON_UPDATE
        if getattr(given, name) is None
    ]
    if isinstance(given.category_id, str):
        errors += id_errors("categoryId", given.category_id)
    if isinstance(given.publisher_id, str):
        errors += id_errors("publisherId", given.publisher_id)
    if isinstance(given.author_ids, list):
        errors += list_errors("authorIds", given.author_ids)
    if errors:
        raise ValidationError(errors)
    changes: dict[str, Any] = {
        name: _kept(getattr(given, name)) for name in ("name", "description", "price", "price_sale")
    }
    changes["category_id"] = _kept(given.category_id, lower=True)
    changes["publisher_id"] = _kept(given.publisher_id, lower=True)
    if isinstance(given.author_ids, list):
        changes["author_ids"] = tuple(a.lower() for a in given.author_ids)
    if isinstance(given.status, BookStatus):
        changes["status"] = given.status.value
    return commands.UpdateBook(book_id=book_id, expected_version=given.expected_version, **changes)


def _kept(value: Any, *, lower: bool = False) -> Any:
    """UNSET (left out) keeps the field; anything else, null included, is the new value."""
    if value is strawberry.UNSET:
        return KEEP
    return value.lower() if lower and isinstance(value, str) else value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type
class BookMutation:
    @strawberry.mutation
    async def create_book(self, info: Info, input: inputs.CreateBookInput) -> payloads.CreateBookResult:
        require_admin(info)
        done = await dispatch(info, create_command(input), input.idempotency_key)
        return payloads.CreateBookSuccess.of(done)

    @strawberry.mutation
    async def update_book(self, info: Info, input: inputs.UpdateBookInput) -> payloads.UpdateBookResult:
        require_admin(info)
        done = await dispatch(info, update_command(input), input.idempotency_key)
        return payloads.UpdateBookSuccess.of(done)

    @described.mutation("Soft delete: the book leaves listings; its history stays.")
    async def delete_book(self, info: Info, input: inputs.DeleteBookInput) -> payloads.DeleteBookResult:
        require_admin(info)
        command = commands.DeleteBook(book_id=check_id("id", input.id))
        done = await dispatch(info, command, input.idempotency_key)
        return payloads.DeleteBookSuccess.of(done)
