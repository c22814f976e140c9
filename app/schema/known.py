"""Operations known from earlier requests, run by the lean path without strawberry's per-operation machinery.

For every operation strawberry's `Schema.execute` builds an execution context, an instance of each
extension, a runner and a middleware manager, and enters each extension's hook around each of its stages:
about a tenth of the API process's instructions for a `createBook` (bench/README.md, "Known operations").
An operation whose document, analysis and validation the admission keeps from earlier requests needs none
of that. `KnownOperations.execute` runs the same steps in one function, with the same objects: the
admission's checks and charge, the cost gate and the operation's span, graphql-core's execution with the
schema's executor, the errors logged and made public, the `cost` extension and the operation's label.

Anything else is answered None before any step that has an effect (the charge), and the view runs
strawberry's whole `execute` instead, which then refuses or parses it: a document not parsed before, an
operation not analysed with these variables, one the admission refuses outright (too complex;
introspection by an anonymous caller), one with validation errors, one of a type the method does not
allow. `tests/integration/test_lean_view.py` sends one corpus through both and compares every answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, execute
from strawberry.execution import optimized_is_awaitable
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_first_operation

from app import tracing
from app.admission import memo
from app.admission.budget import Charge
from app.admission.gate import GateBusy
from app.admission.parsing import parsed_before
from app.metrics.names import OperationNames
from app.schema.admission import (
    Admissions,
    busy,
    cost_results,
    may_run,
    note_reading,
    rate_limited,
    refusal,
    upfront_cost,
)
from app.schema.execution import Executor
from app.schema.extensions import PublicErrors, label_operation
from app.settings import Settings

if TYPE_CHECKING:
    from app.admission import Analysis
    from app.schema.context import Context
    from app.schema.extensions import Schema


# strawberry's test of an awaitable, which its `execute` gives graphql-core (typed as graphql-core takes it).
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)


class KnownOperations:
    """Run a known query or mutation as strawberry's `execute` would with the schema's extensions."""

    def __init__(
        self, schema: Schema, settings: Settings, admissions: Admissions, names: OperationNames
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.admissions = admissions
        self.names = names
        self.public = PublicErrors()  # holds no state of an operation's: one serves them all

    async def execute(
        self, request_data: GraphQLRequestData, context: Context, allowed: Iterable[OperationType]
    ) -> ExecutionResult | None:
        """The operation's result, or None when strawberry's `execute` must run it (nothing was done)."""
        settings = self.settings
        query, variables = request_data.query, request_data.variables
        document = None if query is None else parsed_before(query, settings.max_query_tokens)
        if query is None or document is None:
            return None
        # The name strawberry gives the operation: the one asked for, else the first operation's own.
        name = request_data.operation_name
        if name is None and (first := get_first_operation(document)) is not None and first.name is not None:
            name = first.name.value
        schema = self.schema._schema
        analysis = memo.kept_analysis(
            schema, document, name, variables, list_size_estimate=settings.list_size_estimate
        )
        if analysis is None or not may_run(analysis, allowed):
            return None
        if refusal(analysis, self.admissions.limits, context, settings) is not None:
            return None
        if memo.validation(schema, document):
            return None
        # The text's points, owed since it was not parsed again, with the rest of the cost: one charge.
        paid = max(upfront_cost(query), analysis.cost)
        charge: Charge | None = None
        ran = False
        try:
            if paid or analysis.mutation_fields:
                charge = await context.container.budgets.charge(
                    context.client_key, paid, writes=analysis.mutation_fields
                )
                if not charge.allowed:
                    raise rate_limited(charge)
            note_reading(context, analysis, paid, schema, document)
            async with self.admissions.gate.turn(analysis.cost):
                with tracing.operation(analysis.operation_type, name):
                    executed = execute(
                        schema,
                        document,
                        context_value=context,
                        variable_values=variables,
                        operation_name=name,
                        is_awaitable=_is_awaitable,
                        executor_class=Executor,
                        operation_extensions=request_data.extensions,
                    )
                    if not isinstance(executed, GraphQLExecutionResult):
                        executed = await executed
            ran = True
            result = ExecutionResult(data=executed.data, errors=executed.errors)
        except GateBusy:
            result = ExecutionResult(data=None, errors=[busy()])
        except Exception as error:  # as strawberry's execute: an error of the operation, not of the request
            result = ExecutionResult(data=None, errors=[_graphql_error(error)])
        return self._answered(result, context, name, charge, analysis, ran=ran)

    def _answered(
        self,
        result: ExecutionResult,
        context: Context,
        name: str | None,
        charge: Charge | None,
        analysis: Analysis,
        *,
        ran: bool,
    ) -> ExecutionResult:
        """The result as strawberry's `execute` hands it over: errors logged (the originals) and made
        public, the `cost` extension, the request labelled."""
        if result.errors:
            self.schema._process_errors(result.errors)
        result.extensions = cost_results(charge, analysis)
        label_operation(self.names, context.request, name, ran=ran, failed=bool(result.errors))
        self.public._process_result(result)
        return result


def _graphql_error(error: Exception) -> GraphQLError:
    return error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
