"""The executor: graphql-core's, with short paths for the fields that only read their parent."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from enum import Enum
from operator import attrgetter
from types import FunctionType, GeneratorType
from typing import Any, NamedTuple, TypeGuard
from weakref import WeakKeyDictionary, finalize

from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFieldResolver,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLTypeResolver,
    OperationDefinitionNode,
    Undefined,
    assert_valid_schema,
)
from graphql.execution import Executor as GraphQLCoreExecutor
from graphql.execution import MiddlewareManager
from graphql.execution.collect_fields import FieldDetailsList, FragmentDetails
from graphql.execution.executor import (
    ExecutionHooks,
    Middleware,
    default_field_resolver,
    default_type_resolver,
)
from graphql.pyutils import AbortSignal, AwaitableOrValue, Path, UndefinedType
from graphql.type.scalars import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    serialize_boolean,
    serialize_id,
    serialize_int,
    serialize_string,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from app.schema.extensions import PerEventExecutor
from app.schema.variables import prepared

_GENERAL: Any = object()  # "complete this field graphql-core's way"


DERIVED = "bookworm.derived"
"""Metadata of a field whose resolver is a synchronous function of its parent alone, with no arguments, no
side effects and nothing to await (`Connection.edges`): a flat shape calls it directly, as it reads an
attribute.
"""


class Reader(NamedTuple):
    """How a flat shape completes one field: read the value from the parent, then coerce it (a leaf), or
    complete it by the field's own shape (an object), or each item so (a list)."""

    read: Callable[[Any], Any]
    type: GraphQLLeafType | GraphQLObjectType
    nullable: bool
    listed: bool
    item_nullable: bool


class Read(NamedTuple):
    """One response key of a flat shape: `reader`'s value, completed by `coerce` (a leaf) or `shape` (an
    object); neither for `__typename`, whose value is the type's name (a str: `exact` takes it as it is)."""

    key: str
    read: Callable[[Any], Any]
    coerce: Callable[[Any], Any] | None
    shape: Shape | None
    nullable: bool
    listed: bool
    item_nullable: bool
    exact: type[Any] | None  # a value of exactly this type is its own coerced value (a String's str, say)


class Shape:
    """A flat shape: its reads, and `complete`, the function compiled from them (`_compiled`)."""

    __slots__ = ("complete", "reads")

    def __init__(self, reads: tuple[Read, ...]) -> None:
        self.reads = reads
        self.complete: Callable[[Executor, Any], Any] = _compiled(reads)


Shapes = dict[tuple[Any, ...], tuple[FieldDetailsList, Shape | None]]
# The id of an operation's node, while the node lives -> the shapes its executions share, or None when a
# directive in it makes them differ. By identity: graphql-core's nodes hash and compare by content, deeply.
_OPERATION_SHAPES: dict[int, Shapes | None] = {}
_UNKNOWN: Any = object()
# graphql-core's coercions that give back a value of exactly these types as it is (an Int within its range).
_EXACT: dict[Callable[[Any], Any], type] = {
    serialize_string: str,
    serialize_id: str,
    serialize_boolean: bool,
    serialize_int: int,
}
Readers = dict[Callable[..., Any] | None, Reader | None]  # a field's resolver -> how a shape reads it
_READERS: WeakKeyDictionary[GraphQLSchema, Readers] = WeakKeyDictionary()
_MEMBERS: WeakKeyDictionary[GraphQLEnumType, Callable[[Any], Any]] = WeakKeyDictionary()
# The types of values seen to be neither an exception nor an awaitable, as every value of them is.
_SETTLED: set[type] = {str, int, float, bool}


def reader(field: GraphQLField) -> Reader | None:
    """How a flat shape reads `field`, if it reads an attribute with strawberry's default resolver or is
    DERIVED, takes no arguments, and returns a scalar, an enum or an object type without `is_type_of`, or a
    list of one of them."""
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or field.args:
        return None
    read: Callable[[Any], Any]
    # `_is_default` is strawberry's mark of the resolver it gives a plain field (no resolver of its own,
    # no extension, permission or exception handler); it reads `python_name` with the default resolver.
    if getattr(field.resolve, "_is_default", False) and definition.default_resolver is getattr:
        read = attrgetter(definition.python_name)
    elif definition.metadata.get(DERIVED) and definition.base_resolver is not None:
        if definition.is_async or definition.extensions or definition.arguments:
            return None
        function = definition.base_resolver.wrapped_func
        if not isinstance(function, FunctionType):  # a staticmethod or classmethod object, say
            return None
        read = function
    else:
        return None
    nullable = not isinstance(field.type, GraphQLNonNull)
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    listed, item_nullable = isinstance(inner, GraphQLList), False
    if isinstance(inner, GraphQLList):
        item_nullable = not isinstance(inner.of_type, GraphQLNonNull)
        inner = inner.of_type.of_type if isinstance(inner.of_type, GraphQLNonNull) else inner.of_type
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        return Reader(read, inner, nullable, listed, item_nullable)
    if isinstance(inner, GraphQLObjectType) and inner.is_type_of is None:
        return Reader(read, inner, nullable, listed, item_nullable)
    return None


def plain_field(field: GraphQLField) -> Reader | None:
    """How the per-field short path reads `field`: a reader of one value, never of a list."""
    how = reader(field)
    return None if how is None or how.listed else how


class Executor(PerEventExecutor):
    """Complete a field that only reads an attribute (`Book.name`, `BookEdge.node`) without graphql-core's
    general path: no resolve info, no argument values, no walk down `complete_value`.

    A page of 20 books is about 140 fields, 120 of them such reads; graphql-core builds a resolve info for
    each (which strawberry's resolver of a plain attribute never reads), then walks `complete_value`
    through the non-null, list, leaf and object checks. Here a scalar or enum is read and coerced
    directly, and an object's subfields are executed directly. A value that is null for a non-null
    field, an exception, an awaitable, or one the scalar refuses goes graphql-core's way from the start,
    so errors and results are graphql-core's own: reading an attribute twice does no harm.

    An object whose selected fields all only read (attributes, lists of them, `__typename` and DERIVED
    fields, down to the leaves) goes further: its flat shape, built from the subfields graphql-core collects
    (so @include, @skip and fragments are graphql-core's; once per operation that has no directive, else
    once per execution), completes it in one function compiled for it (`_compiled`), with no path, no
    per-field call into the executor and nothing to gather. A page of 20 books is one
    such object below the `books` resolver: 7.4 -> 5.6 million instructions per request. Any value a flat
    read does not complete as graphql-core would sends the whole object graphql-core's way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # strawberry passes a manager for every operation, with the extensions that hook `resolve` (none
        # of ours do); any middleware at all and every field goes graphql-core's way.
        manager = self.middleware_manager
        self.plain_fields = manager is None or not manager.middlewares
        self.readers = _READERS.setdefault(self.schema, {})
        # (object type, the ids of a field group's nodes) -> (the group, which keeps those nodes alive; its
        # flat shape, or None). Shared by every execution of an operation that no directive can change the
        # selections of: what they collect is the same each time. Else each execution has its own.
        shared = _OPERATION_SHAPES.get(id(self.operation), _UNKNOWN)
        if shared is _UNKNOWN:
            shared = {} if _static(self.operation, self.fragments) else None
            _OPERATION_SHAPES[id(self.operation)] = shared
            finalize(self.operation, _OPERATION_SHAPES.pop, id(self.operation), None)
        self._shapes: Shapes = {} if shared is None else shared

    @classmethod
    def build(  # graphql-core's parameters, in its order
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        field_resolver: GraphQLFieldResolver | None = None,
        type_resolver: GraphQLTypeResolver | None = None,
        subscribe_field_resolver: GraphQLFieldResolver | None = None,
        max_coercion_errors: int = 50,
        enable_early_execution: bool = False,
        middleware: Middleware | None = None,
        is_awaitable: Callable[[Any], TypeGuard[Awaitable[Any]]] | None = None,
        is_async_iterable: Callable[[Any], TypeGuard[AsyncIterable[Any]]] | None = None,
        hide_suggestions: bool = False,
        abort_signal: AbortSignal | None = None,
        hooks: ExecutionHooks | None = None,
        **custom_args: Any,
    ) -> list[GraphQLError] | GraphQLCoreExecutor[Any]:
        """graphql-core's build, with the operation found and its variables coerced by a plan made once
        per document (app/schema/variables.py); any variable value it refuses, graphql-core's way, for
        its errors."""
        assert_valid_schema(schema)
        operation = None
        if middleware is None or isinstance(middleware, MiddlewareManager):
            operation = prepared(schema, document, operation_name)
        variable_values = (
            None if operation is None else operation.values(raw_variable_values or {}, hide_suggestions)
        )
        if operation is None or variable_values is None:
            return super().build(
                schema,
                document,
                root_value,
                context_value,
                raw_variable_values,
                operation_name,
                field_resolver,
                type_resolver,
                subscribe_field_resolver,
                max_coercion_errors,
                enable_early_execution,
                middleware,
                is_awaitable,
                is_async_iterable,
                hide_suggestions=hide_suggestions,
                abort_signal=abort_signal,
                hooks=hooks,
                **custom_args,
            )
        return cls(
            schema,
            operation.fragment_definitions.copy(),
            operation.fragments.copy(),
            root_value,
            context_value,
            operation.operation,
            variable_values,
            field_resolver or default_field_resolver,
            type_resolver or default_type_resolver,
            subscribe_field_resolver or default_field_resolver,
            enable_early_execution,
            middleware,
            is_awaitable,
            is_async_iterable,
            hide_suggestions=hide_suggestions,
            abort_signal=abort_signal,
            hooks=hooks,
            **custom_args,
        )

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, Executor) and executor._shapes is not _OPERATION_SHAPES.get(
            id(self.operation)
        ):
            executor._shapes = {}  # a subscription's events would share (and grow) one memo otherwise
        return executor

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """Complete an object by its flat shape when it has one, else graphql-core's way."""
        if self.plain_fields and position_context is None:
            shape = self._shape(return_type, field_details_list)
            if shape is not None:
                completed = self._flat(shape, result)
                if completed is not _GENERAL:
                    return completed
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )

    def _shape(self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList) -> Shape | None:
        """The flat shape of `object_type`'s subfields in `field_details_list`, or None if any is not flat."""
        key = (object_type, *[id(details.node) for details in field_details_list])
        known = self._shapes.get(key)
        if known is None:
            known = self._shapes[key] = (
                field_details_list,
                self._build_shape(object_type, field_details_list),
            )
        return known[1]

    def _build_shape(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> Shape | None:
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, field_details_list)
        if new_defer_usages:
            return None
        reads: list[Read] = []
        for key, subfields in grouped_field_set.items():
            name = subfields[0].node.name.value
            if name == "__typename":
                reads.append(Read(key, _constant(object_type.name), None, None, False, False, False, str))
                continue
            field = self.schema.get_field(object_type, name)
            if field is None:
                return None
            how = self._reader(field)
            if how is None:
                return None
            if isinstance(how.type, GraphQLObjectType):
                shape = self._shape(how.type, subfields)
                if shape is None:
                    return None
                reads.append(
                    Read(key, how.read, None, shape, how.nullable, how.listed, how.item_nullable, None)
                )
            else:
                coerce = _coercion(how.type)
                exact = _EXACT.get(coerce)
                reads.append(
                    Read(key, how.read, coerce, None, how.nullable, how.listed, how.item_nullable, exact)
                )
        return Shape(tuple(reads))

    def _flat(self, shape: Shape, source: Any) -> dict[str, Any] | Any:
        """`source` completed by `shape`, or _GENERAL when any value is not what a flat read completes: null
        for a non-null field, an exception, an awaitable, a list that is not a list or tuple, a value its
        scalar refuses. Then graphql-core completes the whole object its own way (errors and all); reading
        a plain field twice does no harm, nor calling a DERIVED one twice."""
        return shape.complete(self, source)

    def _complete(self, read: Read, value: Any) -> Any:
        """The value `read` read, completed (None for a nullable field's null), or _GENERAL."""
        if value is None or value is Undefined:
            return None if read.nullable else _GENERAL
        if read.listed:
            if type(value) is not list and type(value) is not tuple:
                return _GENERAL
            items: list[Any] = []
            shape = read.shape
            for item in value:
                if item is None:
                    if not read.item_nullable:
                        return _GENERAL
                    items.append(None)
                    continue
                if shape is not None and type(item) in _SETTLED:  # an edge of a page, say
                    done = shape.complete(self, item)
                else:
                    done = self._flat_value(item, read.coerce, shape, read.exact)
                if done is _GENERAL:
                    return _GENERAL
                items.append(done)
            return items
        exact = read.exact
        if type(value) is exact and (exact is not int or GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
            return value
        if type(value) not in _SETTLED and not self._settled(value):
            return _GENERAL
        if read.shape is not None:
            return read.shape.complete(self, value)
        try:
            value = read.coerce(value)  # type: ignore[misc]  # only __typename has none, and `exact` took it
        except Exception:
            return _GENERAL
        return _GENERAL if value is None or value is Undefined else value

    def _flat_value(
        self, value: Any, coerce: Callable[[Any], Any] | None, shape: Shape | None, exact: type[Any] | None
    ) -> Any:
        """One list item completed as `_flat` completes a field's value, or _GENERAL."""
        if type(value) is exact and (exact is not int or GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT):
            return value
        if type(value) not in _SETTLED and not self._settled(value):
            return _GENERAL
        if shape is not None:
            return shape.complete(self, value)
        try:
            coerced = coerce(value)  # type: ignore[misc]  # a list's items are never __typename
        except Exception:
            return _GENERAL
        return _GENERAL if coerced is None or coerced is Undefined else coerced

    def _settled(self, value: Any) -> bool:
        """Whether `value` is neither an exception nor an awaitable; its type is remembered when that holds
        for every value of the type (not a generator: a generator-based coroutine is one by a flag)."""
        if isinstance(value, Exception) or self.is_awaitable(value):
            return False
        if not isinstance(value, GeneratorType):
            _SETTLED.add(type(value))
        return True

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any] | UndefinedType:
        field = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        if field is not None and self.plain_fields:
            plan = self._reader(field)
            if plan is not None and not plan.listed:
                completed = self._complete_plain(
                    plan, field, source, field_details_list, path, position_context
                )
                if completed is not _GENERAL:
                    return completed
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _reader(self, field: GraphQLField) -> Reader | None:
        try:
            return self.readers[field.resolve]
        except KeyError:
            how = self.readers[field.resolve] = reader(field)
            return how

    def _complete_plain(
        self,
        plan: Reader,
        field: GraphQLField,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """The completed value of a plain field, or _GENERAL."""
        try:
            value = plan.read(source)
        except Exception:
            return _GENERAL
        if value is None or value is Undefined:
            return None if plan.nullable else _GENERAL
        if isinstance(value, Exception) or self.is_awaitable(value):
            return _GENERAL
        if isinstance(plan.type, GraphQLObjectType):
            return self._complete_object(
                plan.type, field.type, field_details_list, path, value, position_context
            )
        try:
            coerced = plan.type.coerce_output_value(value)
        except Exception:
            return _GENERAL
        return _GENERAL if coerced is None or coerced is Undefined else coerced

    def _complete_object(
        self,
        object_type: GraphQLObjectType,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> Any:
        """Execute an object's subfields; their errors are handled as graphql-core's execute_field does."""
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_details_list, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if self.is_awaitable(completed):
            return self._await_object(completed, return_type, field_details_list, path)
        return completed

    async def _await_object(
        self, completed: Any, return_type: GraphQLOutputType, field_details_list: FieldDetailsList, path: Path
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


def _compiled(reads: tuple[Read, ...]) -> Callable[[Executor, Any], Any]:
    """One function that completes an object by `reads`, as Executor._complete would each of its values.

    Written out per shape, as dataclasses and namedtuple write their methods: every value is read first
    (any exception sends the object graphql-core's way), one its `exact` type takes is kept with a type
    check inline, and only the others go through `_complete`; the object is one dict display. A page's
    20 edges and 20 books were 40 loops over their reads, each unpacking every read's eight parts.
    """
    if not reads:
        return lambda executor, source: {}
    names: dict[str, Any] = {
        "GENERAL": _GENERAL,
        "Undefined": Undefined,
        "SETTLED": _SETTLED,
        "complete": Executor._complete,
        "reads": reads,
    }
    lines = ["def complete_object(executor, source):", "    try:"]
    lines += [f"        v{n} = read{n}(source)" for n in range(len(reads))]
    lines += ["    except Exception:", "        return GENERAL"]
    for n, read in enumerate(reads):
        names[f"read{n}"], names[f"exact{n}"] = read.read, read.exact
        names[f"shape{n}"] = read.shape.complete if read.shape is not None else None
        names[f"coerce{n}"] = read.coerce
        v, indent = f"v{n}", "    "
        if read.exact is not None and not read.listed:
            kept = f"type({v}) is exact{n}"
            if read.exact is int:
                kept += f" and {GRAPHQL_MIN_INT} <= {v} <= {GRAPHQL_MAX_INT}"
            lines.append(f"{indent}if not ({kept}):")
            indent += "    "
        if read.listed or (read.shape is None and read.coerce is None):  # a list; __typename, always kept
            lines += _completed(n, indent)
            continue
        # Neither null nor an exception or awaitable (SETTLED's types are none of them): completed here.
        lines.append(f"{indent}if type({v}) in SETTLED:")
        if read.shape is not None:
            lines.append(f"{indent}    {v} = shape{n}(executor, {v})")
        else:
            lines.append(f"{indent}    try:")
            lines.append(f"{indent}        {v} = coerce{n}({v})")
            lines.append(f"{indent}    except Exception:")
            lines.append(f"{indent}        return GENERAL")
            lines.append(f"{indent}    if {v} is None or {v} is Undefined:")
            lines.append(f"{indent}        return GENERAL")
        lines.append(f"{indent}else:")
        lines += _completed(n, indent + "    ")
        if read.shape is not None:
            lines.append(f"{indent}if {v} is GENERAL:")
            lines.append(f"{indent}    return GENERAL")
    # Response keys are GraphQL names; repr writes any str as a literal, so none can be code.
    lines.append("    return {" + ", ".join(f"{read.key!r}: v{n}" for n, read in enumerate(reads)) + "}")
    exec("\n".join(lines), names)  # built above from numbers and repr()s only
    function: Callable[[Executor, Any], Any] = names["complete_object"]
    return function


def _completed(n: int, indent: str) -> list[str]:
    """The lines that complete value `n` by Executor._complete."""
    lines = [f"v{n} = complete(executor, reads[{n}], v{n})", f"if v{n} is GENERAL:", "    return GENERAL"]
    return [indent + line for line in lines]


def _coercion(leaf: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """How a flat shape coerces a value of `leaf`: the type's own coercion, remembered per member for an
    enum. strawberry's enum coercion scans every value of the enum for each member it writes (1.3 µs of
    a page's 20 `status` fields each); a member's name never changes."""
    coerce = leaf.coerce_output_value
    if not isinstance(leaf, GraphQLEnumType):
        return coerce
    known = _MEMBERS.get(leaf)
    if known is None:
        names: dict[Enum, Any] = {}

        def known(value: Any) -> Any:
            if not isinstance(value, Enum):
                return coerce(value)
            name = names.get(value, _UNKNOWN)
            if name is _UNKNOWN:  # a member (of this enum or not) coerced once; one refused raises each time
                name = names[value] = coerce(value)
            return name

        _MEMBERS[leaf] = known
    return known


def _constant(value: str) -> Callable[[Any], str]:
    def read(_source: Any) -> str:
        return value

    return read


def _static(operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]) -> bool:
    """Whether no directive in the operation or its fragments can change which fields a selection collects
    (@skip, @include and @defer are the ones that do; any directive at all answers no), nor a fragment's
    own variables."""
    selection_sets = [operation.selection_set]
    for fragment in fragments.values():
        definition = fragment.definition
        if fragment.variable_signatures or definition.variable_definitions or definition.directives:
            return False
        selection_sets.append(definition.selection_set)
    while selection_sets:
        for selection in selection_sets.pop().selections:
            if selection.directives:
                return False
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                selection_sets.append(inner)
    return True
