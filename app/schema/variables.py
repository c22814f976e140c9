"""Variable values coerced by a plan made once per operation: graphql-core's values, without its walks.

For every request graphql-core's `Executor.build` finds the operation, reads each variable's type from the
document again (`get_variable_signature`), walks each value once to see whether it is nested too deeply
and once more to coerce it, asking at every level what kind of type it is (about 150,000 instructions for
a `CreateBookInput`: 6 % of a `createBook` in the API process). A `Prepared` operation does the finding and
the reading once per parsed document (admission keeps those: app/admission/parsing.py), and each
variable's coercion is a function made for its type, per schema, that calls what graphql-core calls (each
scalar's and enum's own coercion, an input type's `out_type`, `coerce_default_value`) in the same order.

It only ever gives graphql-core's answer for values that graphql-core accepts: any value it would refuse
(a missing non-null, a wrong type, an unknown field, a scalar's error), and anything unexpected, makes
`values` answer None, and the executor then builds graphql-core's own way, which gives the errors, their
messages and their order. A type that can nest without end (an input type holding itself, directly or
not) or a oneOf input is coerced by graphql-core's own functions, depth check included; a value can only
be too deep for graphql-core (`MAX_NESTING_DEPTH`) in such a type. A variable whose default is used gets
it from graphql-core (`maybe_use_default_value`), with a signature made for the request as graphql-core
makes one: the coerced default is memoised on it, and must not be shared between requests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from weakref import WeakKeyDictionary, finalize

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
    VariableDefinitionNode,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    input_is_nested_too_deeply,
    maybe_use_default_value,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import is_iterable
from graphql.type import GraphQLEnumType, GraphQLScalarType
from graphql.type.scalars import coerce_id, coerce_string
from graphql.utilities.coerce_input_value import coerce_default_value, coerce_input_value

Coerce = Callable[[Any], Any]  # a value -> graphql-core's coerced value, or Undefined where it refuses it


class Refused(Exception):
    """A value graphql-core refuses: the executor is built graphql-core's way, for its errors."""


class Variable:
    """One variable of an operation: how its value is coerced, and what graphql-core records for it."""

    __slots__ = ("coerce", "definition", "name", "required", "signature")

    def __init__(
        self, signature: GraphQLVariableSignature, definition: VariableDefinitionNode, coerce: Coerce
    ):
        self.name = signature.name
        self.signature = signature
        self.definition = definition
        self.required = isinstance(signature.type, GraphQLNonNull)
        self.coerce = coerce


class Prepared:
    """An operation of a document, its fragments, and its variables' coercions, for one schema."""

    __slots__ = ("fragment_definitions", "fragments", "operation", "schema", "variables")

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragment_definitions: dict[str, FragmentDefinitionNode],
        variables: tuple[Variable, ...],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragment_definitions = fragment_definitions
        self.fragments = {name: FragmentDetails(node) for name, node in fragment_definitions.items()}
        self.variables = variables

    def values(self, inputs: Mapping[str, Any], hide_suggestions: bool) -> VariableValues | None:
        """The variables' values as graphql-core's `get_variable_values` gives them, or None where it would
        answer errors (or raise)."""
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        try:
            for variable in self.variables:
                name = variable.name
                value = inputs.get(name, Undefined)
                signature = variable.signature
                if variable.definition.default_value:  # graphql-core's signature is the request's own
                    signature = self._signature(variable.definition)
                if value is Undefined:
                    sources[name] = VariableValueSource(signature)
                    if variable.definition.default_value:
                        maybe_use_default_value(coerced, name, signature, _refuse, hide_suggestions)
                    elif variable.required:
                        return None
                    continue
                sources[name] = VariableValueSource(signature, value)
                value = variable.coerce(value)
                if value is Undefined:
                    return None
                coerced[name] = value
        except Exception:  # graphql-core's way raises it again, or answers its errors
            return None
        return VariableValues(sources, coerced)

    def _signature(self, definition: VariableDefinitionNode) -> GraphQLVariableSignature:
        signature = get_variable_signature(self.schema, definition)
        if isinstance(signature, GraphQLError):  # not so when the operation was prepared
            raise signature
        return signature


_PREPARED: dict[int, dict[tuple[GraphQLSchema, str | None], Prepared | None]] = {}
# The id of a document, while it lives -> its prepared operations per schema and operation name (None: the
# document is left to graphql-core). By identity, as app/schema/execution.py keeps its shapes.
_COERCIONS: WeakKeyDictionary[GraphQLSchema, dict[GraphQLInputType, Coerce]] = WeakKeyDictionary()


def prepared(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Prepared | None:
    """`document`'s operation `operation_name`, prepared for `schema` (once per document), or None when
    graphql-core's build answers errors for the document itself or its fragments have variables."""
    key = id(document)
    known = _PREPARED.get(key)
    if known is None:
        known = _PREPARED[key] = {}
        finalize(document, _PREPARED.pop, key, None)
    try:
        return known[schema, operation_name]
    except KeyError:
        made = _prepare(schema, document, operation_name)
        if made is not None or operation_name is None:  # not every name a client sends: few can exist
            known[schema, operation_name] = made
        return made


def _prepare(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> Prepared | None:
    operation: OperationDefinitionNode | None = None
    fragment_definitions: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:  # as graphql-core's Executor.build finds them
        if isinstance(definition, OperationDefinitionNode):
            if operation_name is None:
                if operation:
                    return None
                operation = definition
            elif definition.name and definition.name.value == operation_name:
                operation = definition
        elif isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                return None  # their signatures memoise defaults too: graphql-core's, per request
            fragment_definitions[definition.name.value] = definition
    if operation is None:
        return None
    variables: list[Variable] = []
    for node in operation.variable_definitions or ():
        signature = get_variable_signature(schema, node)
        if isinstance(signature, GraphQLError):
            return None
        variables.append(Variable(signature, node, coercion(schema, signature.type)))
    return Prepared(schema, operation, fragment_definitions, tuple(variables))


def _refuse(error: GraphQLError, path: list[str | int]) -> None:
    raise Refused(error.message)


def coercion(schema: GraphQLSchema, type_: GraphQLInputType) -> Coerce:
    """How a variable of `type_` is coerced: graphql-core's `coerce_input_value`, planned for the type."""
    if _depth(type_, set()) > MAX_NESTING_DEPTH:  # it nests without end, or deeper than graphql-core allows

        def checked(value: Any) -> Any:
            if input_is_nested_too_deeply(value, type_):
                return Undefined
            return coerce_input_value(value, type_)

        return checked
    return _Planner(_COERCIONS.setdefault(schema, {})).plan(type_)


_ENDLESS = MAX_NESTING_DEPTH + 1


def _depth(type_: GraphQLInputType, within: set[GraphQLInputObjectType]) -> int:
    """The deepest `input_is_nested_too_deeply` can reach in a value of `type_`, or more than graphql-core
    allows when the type nests without end; a oneOf input counts as endless (graphql-core coerces it)."""
    if isinstance(type_, GraphQLNonNull):
        return _depth(type_.of_type, within)
    if isinstance(type_, GraphQLList):
        return 1 + _depth(type_.of_type, within)
    if isinstance(type_, GraphQLInputObjectType):
        if type_ in within or type_.is_one_of:
            return _ENDLESS
        within.add(type_)
        deepest = max((_depth(field.type, within) for field in type_.fields.values()), default=0)
        within.discard(type_)
        return min(1 + deepest, _ENDLESS)
    return 0


class _Planner:
    """Plans coercions; an input type's is made once per schema (none of them holds itself here)."""

    def __init__(self, known: dict[GraphQLInputType, Coerce]) -> None:
        self.known = known

    def plan(self, type_: GraphQLInputType) -> Coerce:
        """`coerce_input_value` for `type_`, null and all."""
        required = isinstance(type_, GraphQLNonNull)
        named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(named, GraphQLScalarType | GraphQLEnumType):
            return _leaf(named, required)  # one call, not two, for most fields
        inner = self.present(named)
        if required:

            def non_null(value: Any) -> Any:
                if value is None or value is Undefined:
                    return Undefined
                return inner(value)

            return non_null

        def nullable(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            return inner(value)

        return nullable

    def present(self, type_: GraphQLInputType) -> Coerce:
        """`coerce_input_value` for a value of a list or input type that is neither null nor Undefined."""
        if isinstance(type_, GraphQLList):
            return self._list(type_)
        assert isinstance(type_, GraphQLInputObjectType)
        known = self.known.get(type_)
        if known is None:
            known = self.known[type_] = self._input(type_)
        return known

    def _list(self, type_: GraphQLList[Any]) -> Coerce:
        item = self.plan(type_.of_type)

        def listed(value: Any) -> Any:
            if type(value) is not list and not is_iterable(value):
                single = item(value)  # a list of one
                return Undefined if single is Undefined else [single]
            items: list[Any] = []
            for element in value:
                coerced = item(element)
                if coerced is Undefined:
                    return Undefined
                items.append(coerced)
            return items

        return listed

    def _input(self, type_: GraphQLInputObjectType) -> Coerce:
        fields = type_.fields
        names = frozenset(fields)
        # Per field, in the type's order: its name, the key it is given (its out_name), how a given
        # value is coerced, and whether a missing one refuses the value, is left out or takes a default.
        steps: list[tuple[str, str, Coerce, Any]] = []
        for name, field in fields.items():
            if field.default is not None:
                missing: Any = field  # coerce_default_value(field): coerced once, memoised on the field
            elif field.default_value is not Undefined:
                missing = _Default(field.default_value)
            elif isinstance(field.type, GraphQLNonNull):
                missing = _REQUIRED
            else:
                missing = _LEFT_OUT
            steps.append((name, field.out_name or name, self.plan(field.type), missing))
        out_type = type_.out_type
        kept = out_type is GraphQLInputObjectType.out_type  # which gives the dict back as it is

        def input_object(value: Any) -> Any:
            if not isinstance(value, dict):
                return Undefined
            if not names.issuperset(value):
                for name, given in value.items():
                    if given is not Undefined and name not in names:
                        return Undefined
            coerced: dict[str, Any] = {}
            for name, key, coerce, missing in steps:
                given = value.get(name, Undefined)
                if given is Undefined:
                    if missing is _LEFT_OUT:
                        continue
                    if missing is _REQUIRED:
                        return Undefined
                    default = missing.value if type(missing) is _Default else coerce_default_value(missing)
                    if default is not Undefined:
                        coerced[key] = default
                    continue
                given = coerce(given)
                if given is Undefined:
                    return Undefined
                coerced[key] = given
            return coerced if kept else out_type(coerced)

        return input_object


class _Default:
    """An input field's deprecated internal default (`default_value`), which graphql-core uses as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_REQUIRED: Any = object()
_LEFT_OUT: Any = object()


def _leaf(type_: GraphQLScalarType | GraphQLEnumType, required: bool) -> Coerce:
    """`coerce_input_value` for a scalar or an enum, null and all."""
    coerce = type_.coerce_input_value
    # graphql-core's String and ID give a str back as it is; a str is never null, never Undefined.
    kept = str if coerce is coerce_string or coerce is coerce_id else None
    null = Undefined if required else None

    def leaf(value: Any) -> Any:
        if type(value) is kept:
            return value
        if value is None or value is Undefined:
            return null
        try:
            return coerce(value)
        except Exception:  # graphql-core's coerce_input_value refuses the value so
            return Undefined

    return leaf
