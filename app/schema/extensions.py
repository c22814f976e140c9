"""Schema extensions: admission control (parse, analyse, charge, validate), public error formatting, the
operation's metrics label, and an executor whose subscriptions do not grow with every event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.execution import Executor
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext

from app.db import is_postgres_down
from app.domain.errors import DomainError, UnavailableError, ValidationError
from app.live.errors import ResumeTooOld
from app.metrics.names import OperationNames
from app.metrics.requests import note_operation
from app.schema.admission import admission
from app.settings import Settings

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

    def _process_result(self, result: object) -> None:
        # MaskErrors checks the result against a runtime Protocol, which costs more than the rest of
        # this extension on an answer without errors; an attribute read tells the same.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

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


class OperationLabel(SchemaExtension):
    """Note an HTTP request's operation label (app/metrics/names.py) and whether it answered with errors.

    It overrides `get_results` alone, which strawberry calls once an HTTP operation has its result; the
    hooks an extension does not override cost nothing.
    """

    def __init__(self, names: OperationNames) -> None:
        super().__init__()
        self.names = names

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context
        # No request: the schema run without one (a script, a test). A websocket's operations are counted
        # by their subscriptions.
        request = getattr(context.context, "request", None)
        if request is None or request.scope["type"] != "http":
            return {}
        # `result` is set once the operation was executed, after it was parsed, validated and admitted.
        label = self.names.label(context.operation_name, ran=context.result is not None)
        note_operation(request, label, failed=bool(context.pre_execution_errors))
        reading = getattr(request.state, "reading", None)
        if reading is not None:
            reading.operation = label  # an answer kept in the response cache is labelled as this one
        return {}


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


class PerEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Run each subscription event with a subfield memo of its own, so a subscription stays the same size.

    graphql-core 3.3.2 builds every event's executor as a shallow copy of the subscription's, so all
    events share one memo of collected subfields. It is keyed by the identity of field lists that each
    event creates anew, and keeps them alive: it gains entries with every event (about 1.5 KiB per
    event delivered) and is freed only when the subscription ends. The memo only pays within one
    execution (a list of objects), so each event gets an empty one.
    """

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


def _extensions(error: DomainError) -> dict[str, object]:
    extensions: dict[str, object] = {"code": error.code}
    if isinstance(error, ValidationError):
        extensions["fields"] = [{"field": f.field, "message": f.message} for f in error.fields]
    return extensions


def schema_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Return the extension factories, in the order they must run."""
    # Admission parses (cached, within limits), analyses, charges the caller and validates (cached).
    names = OperationNames()
    return [admission(settings), PublicErrors, lambda: OperationLabel(names)]
