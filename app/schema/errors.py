"""Typed user errors (result union members) and the handlers that turn domain errors into them."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types.field import StrawberryField

from app.domain import errors as domain


@strawberry.interface(description="An expected failure, returned as data in a mutation's result union.")
class UserError:
    message: str
    code: str


@strawberry.type
class FieldError:
    field: str
    message: str


@strawberry.type(description="The input broke a rule; `fields` names each offending input field.")
class ValidationFailed(UserError):
    fields: list[FieldError]


@strawberry.type
class NotFound(UserError):
    pass


@strawberry.type(description="A version clash, a uniqueness rule, or a state that forbids the change.")
class Conflict(UserError):
    pass


@strawberry.type
class Forbidden(UserError):
    pass


def validation_failed(error: domain.ValidationError) -> ValidationFailed:
    fields = [FieldError(field=f.field, message=f.message) for f in error.fields]
    return ValidationFailed(message=error.message, code=error.code, fields=fields)


class ValidationHandler(strawberry.ExceptionHandler[domain.ValidationError, ValidationFailed]):
    def handle(
        self, exception: domain.ValidationError, *, field: StrawberryField, info: Any
    ) -> ValidationFailed:
        return validation_failed(exception)


class NotFoundHandler(strawberry.ExceptionHandler[domain.NotFoundError, NotFound]):
    def handle(self, exception: domain.NotFoundError, *, field: StrawberryField, info: Any) -> NotFound:
        return NotFound(message=exception.message, code=exception.code)


class ConflictHandler(strawberry.ExceptionHandler[domain.ConflictError, Conflict]):
    def handle(self, exception: domain.ConflictError, *, field: StrawberryField, info: Any) -> Conflict:
        return Conflict(message=exception.message, code=exception.code)


class ForbiddenHandler(strawberry.ExceptionHandler[domain.ForbiddenError, Forbidden]):
    def handle(self, exception: domain.ForbiddenError, *, field: StrawberryField, info: Any) -> Forbidden:
        return Forbidden(message=exception.message, code=exception.code)


# A field whose result union holds the error type gets it as data; elsewhere the error stays top-level.
EXCEPTION_HANDLERS: tuple[strawberry.ExceptionHandler[Any, Any], ...] = (
    ValidationHandler(),
    NotFoundHandler(),
    ConflictHandler(),
    ForbiddenHandler(),
)
USER_ERROR_TYPES = (ValidationFailed, NotFound, Conflict, Forbidden)
# The error members of every mutation's result union, beside its `<Verb><Noun>Success`.
MutationErrors = ValidationFailed | NotFound | Conflict | Forbidden
