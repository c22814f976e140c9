"""Typed domain errors: expected failures that become GraphQL result union members."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """An expected failure of a command."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(DomainError):
    code = "VALIDATION_FAILED"

    def __init__(self, fields: list[FieldError], message: str = "The input is not valid.") -> None:
        super().__init__(message)
        self.fields = fields

    @classmethod
    def single(cls, field: str, message: str) -> ValidationError:
        return cls([FieldError(field, message)])


class NotFoundError(DomainError):
    code = "NOT_FOUND"


class ConflictError(DomainError):
    code = "CONFLICT"


class KeyReusedError(ConflictError):
    """An idempotency key that already answered a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__(
            "This idempotency key was used for a different request; use a new key for a new request."
        )


class ForbiddenError(DomainError):
    code = "FORBIDDEN"


class UnavailableError(DomainError):
    """PostgreSQL or Redis cannot be reached right now; the request changed nothing."""

    code = "UNAVAILABLE"
