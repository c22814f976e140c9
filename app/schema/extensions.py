"""Schema extensions: admission control (parse, analyse, charge, validate), public error formatting, the
operation's metrics label, a runner that enters them cheaply, and an executor whose subscriptions do not
grow with every event."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from graphql.execution import Executor
from starlette.requests import HTTPConnection
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext

from app.db import is_postgres_down
from app.domain.errors import DomainError, UnavailableError, ValidationError
from app.live.errors import ResumeTooOld
from app.metrics.names import OperationNames
from app.metrics.requests import note_operation
from app.schema import resolvers
from app.schema.cache import reading_of

if TYPE_CHECKING:
    from app.schema.known import KnownOperations

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
        # `result` is set once the operation was executed, after it was parsed, validated and admitted.
        label_operation(
            self.names,
            getattr(context.context, "request", None),
            context.operation_name,
            ran=context.result is not None,
            failed=bool(context.pre_execution_errors),
        )
        return {}


def label_operation(
    names: OperationNames, request: HTTPConnection | None, name: str | None, *, ran: bool, failed: bool
) -> None:
    """Note an HTTP request's operation label, and whether its answer carries errors.

    No request: the schema run without one (a script, a test). A websocket's operations are counted by
    their subscriptions.
    """
    if request is None or request.scope["type"] != "http":
        return
    label = names.label(name, ran=ran)
    note_operation(request, label, failed=failed)
    reading = reading_of(request)
    if reading is not None:
        reading.operation = label  # an answer kept in the response cache is labelled as this one


Stage = contextlib.AbstractAsyncContextManager[Any]
STAGES = ("on_operation", "on_parse", "on_validate", "on_execute")
_NO_HOOK: Stage = contextlib.nullcontext()  # entered with `with` and `async with` alike


class _SyncHook:
    """A generator hook entered with `async with`, as strawberry enters a sync hook in an async stage."""

    __slots__ = ("hook",)

    def __init__(self, hook: contextlib.AbstractContextManager[Any]) -> None:
        self.hook = hook

    def __enter__(self) -> Any:
        return self.hook.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        return self.hook.__exit__(*exc)

    async def __aenter__(self) -> Any:
        return self.hook.__enter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        return self.hook.__exit__(*exc)


Hook = Callable[[SchemaExtension], Any]  # an extension -> its hook as a context manager
Plan = dict[str, tuple[int, Hook] | None]


@lru_cache(maxsize=16)
def _plan(kinds: tuple[type[SchemaExtension], ...]) -> Plan:
    """For each stage, None when no extension hooks it, else the one extension (its index) that does
    and its hook as a context manager. A stage left out (hooked twice, or by a plain function) runs
    strawberry's way."""
    plan: Plan = {}
    for stage in STAGES:
        default = getattr(SchemaExtension, stage)
        hooked = [(i, getattr(kind, stage)) for i, kind in enumerate(kinds)]
        hooked = [(i, hook) for i, hook in hooked if hook is not default]
        if not hooked:
            plan[stage] = None
        elif len(hooked) == 1:
            index, hook = hooked[0]
            entered = _entered(hook)
            if entered is not None:
                plan[stage] = (index, entered)
    return plan


def _entered(hook: Callable[..., Any]) -> Hook | None:
    """The hook as a context manager that `async with` enters; None for a hook that is no generator."""
    if inspect.isasyncgenfunction(hook):
        return contextlib.asynccontextmanager(hook)
    if inspect.isgeneratorfunction(hook):
        sync = contextlib.contextmanager(hook)
        return lambda extension: _SyncHook(sync(extension))
    return None


class HookRunner(SchemaExtensionsRunner):
    """strawberry's extension runner, minus the work it repeats for every operation.

    For each stage of each operation strawberry looks up every extension's hook, asks `inspect` what
    kind of function it is and wraps it in a new context manager (about 8 % of a by-id query's CPU,
    py-spy). Here that is worked out once per set of extension classes; an operation only enters the
    hook. A stage that several extensions hook, or hook with a plain function, runs strawberry's way.
    """

    def __init__(self, execution_context: ExecutionContext, extensions: list[SchemaExtension]) -> None:
        super().__init__(execution_context, extensions)
        self.plan = _plan(tuple(type(extension) for extension in extensions))

    def _stage(self, stage: str) -> Stage | None:
        if stage not in self.plan:
            return None
        hooked = self.plan[stage]
        if hooked is None:
            return _NO_HOOK
        index, hook = hooked
        entered: Stage = hook(self.extensions[index])
        return entered

    def operation(self) -> Any:
        return self._stage("on_operation") or super().operation()

    def parsing(self) -> Any:
        return self._stage("on_parse") or super().parsing()

    def validation(self) -> Any:
        return self._stage("on_validate") or super().validation()

    def executing(self) -> Any:
        return self._stage("on_execute") or super().executing()


class Schema(strawberry.Schema):
    """A schema that logs unexpected errors only (with their trace), not every client mistake, runs its
    extensions' hooks through HookRunner, and calls its resolvers through the ones app/schema/resolvers.py
    builds once per field (planned argument conversion). `known` runs the lean path's operations known
    from earlier requests (app/schema/known.py); build_schema sets it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        resolvers.install(self)
        self.known: KnownOperations | None = None

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return HookRunner(execution_context, extensions)

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
