"""The admission extension: every operation is parsed within limits, analysed, charged to its caller's
budget and only then validated and run, over HTTP and websockets alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app import tracing
from app.admission import Analysis, Limits, QueryTooComplex, check, memo, parse_limited
from app.admission.budget import Charge
from app.admission.gate import CostGate, GateBusy
from app.admission.parsing import parsed_before
from app.metrics.instruments import refused
from app.schema.cache import cacheable, reading_of
from app.settings import Settings

if TYPE_CHECKING:
    from app.queries.response_cache import Reading
    from app.schema.context import Context

RATE_LIMITED = "RATE_LIMITED"
SERVER_BUSY = "SERVER_BUSY"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"


class Admission(SchemaExtension):
    """Refuse what is too complex or over budget before graphql-core validates or runs any of it."""

    def __init__(self, settings: Settings, gate: CostGate, limits: Limits) -> None:
        super().__init__()
        self.settings = settings
        self.gate = gate
        self.limits = limits
        self.analysis: Analysis | None = None
        self.charge: Charge | None = None
        self.upfront = 0  # what the document's size costs
        self.owed = 0  # the part of upfront not charged yet (charged with the rest of the cost)

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query is not None:
            self.upfront = upfront_cost(context.query)
            if not self._known(context.query):
                # Parsing costs in proportion to the text, so the text's size is charged before it is
                # parsed: a client out of budget cannot make the server parse anything.
                await self._charge(self.upfront)
                try:
                    context.graphql_document = parse_limited(context.query, self.settings.max_query_tokens)
                except QueryTooComplex as refused:
                    raise too_complex(refused) from None
        yield

    def _known(self, query: str) -> bool:
        """Take the document and its analysis when both are kept from an earlier operation.

        Then nothing is parsed or analysed before the charge, so the text's size is owed and charged
        with the rest of the cost, in one charge instead of two.
        """
        context = self.execution_context
        document = parsed_before(query, self.settings.max_query_tokens)
        if document is None:
            return False
        analysis = memo.kept_analysis(
            context.schema._schema,
            document,
            context.operation_name,
            context.variables,
            list_size_estimate=self.settings.list_size_estimate,
        )
        if analysis is None or not may_run(analysis, context.allowed_operations):
            # An operation strawberry refuses after parsing (a mutation over GET, say) never reaches the
            # charge of the rest: it pays for its text before, as one that is parsed.
            return False
        context.graphql_document, self.analysis, self.owed = document, analysis, self.upfront
        return True

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        schema = context.schema._schema
        try:
            await self._admit(schema, context.graphql_document)
        except GraphQLError as refused:
            context.pre_execution_errors = [refused]
        else:
            context.pre_execution_errors = memo.validation(schema, context.graphql_document)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        analysis = self.analysis
        if analysis is None or analysis.operation_type == "subscription":
            # A subscription's life is not one stretch of CPU: each event it delivers is cheap.
            yield
            return
        try:
            async with self.gate.turn(analysis.cost):
                with tracing.operation(analysis.operation_type, self.execution_context.operation_name):
                    yield
        except GateBusy:
            raise busy() from None

    async def _admit(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        context = self.execution_context
        caller: Context = context.context
        analysis = self.analysis
        if analysis is None:
            analysis = self.analysis = memo.analysis(
                schema,
                document,
                context.operation_name,
                context.variables,
                list_size_estimate=self.settings.list_size_estimate,
            )
        error = refusal(analysis, self.limits, caller, self.settings)
        if error is not None:
            await self._pay_owed()  # a refused document's text is paid for, as when it is parsed
            raise error
        rest = max(0, analysis.cost - self.upfront)
        if self.owed + rest or analysis.mutation_fields:
            await self._charge(self.owed + rest, writes=analysis.mutation_fields)
            self.owed = 0
        note_reading(caller, analysis, self.upfront + rest, schema, document)

    async def _pay_owed(self) -> None:
        if self.owed:
            await self._charge(self.owed)
            self.owed = 0

    async def _charge(self, cost: int, writes: int = 0) -> None:
        caller: Context = self.execution_context.context
        self.charge = await caller.container.budgets.charge(caller.client_key, cost, writes=writes)
        if not self.charge.allowed:
            raise rate_limited(self.charge)

    def get_results(self) -> dict[str, Any]:
        return cost_results(self.charge, self.analysis)


def refusal(analysis: Analysis, limits: Limits, caller: Context, settings: Settings) -> GraphQLError | None:
    """The error that refuses an analysed operation outright (too complex; introspection by an anonymous
    caller where the server refuses it), or None. Counts nothing: the caller that raises it does."""
    try:
        check(analysis, limits)
    except QueryTooComplex as refused:
        return too_complex(refused)
    anonymous = not caller.principal.is_authenticated
    if analysis.introspection and anonymous and not settings.anonymous_introspection:
        return introspection_refused()
    return None


def note_reading(
    caller: Context, analysis: Analysis, paid: int, schema: GraphQLSchema, document: DocumentNode
) -> None:
    """Tell the response cache what an admitted query paid and whether its answer may be kept."""
    reading = _reading(caller) if analysis.operation_type == "query" else None
    if reading is not None:
        # What a request answered from the cache pays: all this one paid, in one charge.
        reading.cost, reading.requested_cost = paid, analysis.cost
        reading.cacheable = not analysis.introspection and cacheable(schema, document)


def cost_results(charge: Charge | None, analysis: Analysis | None) -> dict[str, Any]:
    """The response's `cost` extension: what was charged and what is left, and the operation's cost."""
    cost: dict[str, Any] = charge.extensions() if charge is not None else {}
    if analysis is not None:
        cost["requestedQueryCost"] = analysis.cost
    return {"cost": cost} if cost else {}


def _reading(caller: Context) -> Reading | None:
    """The response cache's record of this HTTP request's read, when its answer may be kept."""
    request = caller.request
    return None if request is None else reading_of(request)


def may_run(analysis: Analysis, allowed: Iterable[OperationType]) -> bool:
    """Whether the analysed operation is of a type the request allows (a query or mutation over POST)."""
    return analysis.operation_type is not None and OperationType(analysis.operation_type) in allowed


def upfront_cost(query: str) -> int:
    """What a document's text costs before it is parsed: one point, and one more per 1,000 characters."""
    return 1 + len(query) // 1_000


class Admissions:
    """The factory strawberry calls for each operation's Admission; its operations share one cost gate,
    which the lean path's operations (app/schema/known.py) share too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gate = CostGate.from_settings(settings)
        self.limits = Limits.from_settings(settings)

    def __call__(self) -> Admission:
        return Admission(self.settings, self.gate, self.limits)


def admission(settings: Settings) -> Admissions:
    """Return the factory strawberry calls for each operation; its operations share one cost gate."""
    return Admissions(settings)


def too_complex(refused: QueryTooComplex) -> GraphQLError:
    """The error of an operation over a static limit; it names the limit and the figures."""
    return GraphQLError(refused.message, extensions=refused.extensions())


def rate_limited(charge: Charge) -> GraphQLError:
    """The error of an operation its caller cannot afford now; it says when it can. Counts the refusal."""
    refused(f"budget_{charge.bucket or 'cost'}")
    seconds = max(charge.retry_after, 0.001)
    message = (
        f"The {charge.bucket} budget of this client is spent: this operation costs {charge.cost}. "
        f"Retry after {seconds:.1f} s."
    )
    extensions = {"code": RATE_LIMITED, "retryAfter": round(seconds, 3), "cost": charge.extensions()}
    return GraphQLError(message, extensions=extensions)


def busy() -> GraphQLError:
    """The error of an expensive operation that found no room to run within its wait."""
    message = "The server is busy with other expensive operations; retry in a moment."
    return GraphQLError(message, extensions={"code": SERVER_BUSY, "retryAfter": 1})


def introspection_refused() -> GraphQLError:
    """The error of an anonymous introspection query when the server refuses those."""
    message = "Introspection is disabled for anonymous callers on this server; sign in to read the schema."
    return GraphQLError(message, extensions={"code": INTROSPECTION_DISABLED})
