"""Schema extensions: parser and validation caches, a depth limit, and public error formatting."""

from __future__ import annotations

import logging
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.types import ExecutionContext

from app.db import is_postgres_down
from app.domain.errors import DomainError, UnavailableError, ValidationError
from app.live.errors import ResumeTooOld

logger = logging.getLogger("bookworm.graphql")

CACHE_SIZE = 1024
UNEXPECTED = "Unexpected error. It has been logged; the request may be retried."
UNAVAILABLE = "PostgreSQL or Redis cannot be reached right now; the request may be retried."
RESUME_EXPIRED = "RESUME_EXPIRED"
# The horizon itself is not shown: resuming from it would skip the changes below it.
RESUME_EXPIRED_MESSAGE = (
    "The changes after this position are no longer kept. Re-read the entity with a query, then "
    "subscribe again without `after` (or with a position returned since)."
)
EXPECTED_ERRORS = (DomainError, ResumeTooOld)


def _is_unreachable(error: BaseException | None) -> bool:
    """Tell whether an error an adapter let through means a server cannot be reached (not a bug)."""
    # Any OSError counts: a refused or timed-out connection to PostgreSQL or Redis.
    return error is not None and is_postgres_down(error)


def _needs_rewrite(error: GraphQLError) -> bool:
    """Errors raised by our code or a library get a public form; GraphQL's own errors pass as they are."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class PublicErrors(MaskErrors):
    """Show domain errors with their code; hide everything else (no trace, no SQL) and log it."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_needs_rewrite, error_message=UNEXPECTED)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            return self._public(error, original.message, _extensions(original))
        if isinstance(original, ResumeTooOld):
            return self._public(error, RESUME_EXPIRED_MESSAGE, {"code": RESUME_EXPIRED})
        if _is_unreachable(original):
            # A refused or lost connection (or PostgreSQL shutting down, starting up) that an adapter
            # let through: still a clear, typed answer.
            return self._public(error, UNAVAILABLE, {"code": UnavailableError.code})
        return self._public(error, self.error_message, {"code": "INTERNAL_SERVER_ERROR"})

    @staticmethod
    def _public(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions,
        )


class Schema(strawberry.Schema):
    """A schema that logs unexpected errors only (with their trace), not every client mistake."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if not _needs_rewrite(error) or isinstance(original, EXPECTED_ERRORS):
                continue
            if _is_unreachable(original):
                logger.warning("%s answered UNAVAILABLE: %s", error.path or "a request", original)
            else:
                logger.error("unexpected error at %s", error.path, exc_info=original)


def _extensions(error: DomainError) -> dict[str, object]:
    extensions: dict[str, object] = {"code": error.code}
    if isinstance(error, ValidationError):
        extensions["fields"] = [{"field": f.field, "message": f.message} for f in error.fields]
    return extensions


def schema_extensions(max_query_depth: int) -> list[Callable[[], SchemaExtension]]:
    """Return the extension factories, in the order they must run."""
    # One rule class for the schema's life, so the validation cache sees the same rules every time.
    depth_rule = create_validator(max_query_depth, None)
    return [
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: AddValidationRules([depth_rule]),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        PublicErrors,
    ]
