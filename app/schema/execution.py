"""The executor: graphql-core's, with a short path for the plain scalar and enum fields of an object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import AwaitableOrValue, Path, UndefinedType
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from app.schema.extensions import PerEventExecutor

_GENERAL: Any = object()  # "complete this field graphql-core's way"


class PlainField(NamedTuple):
    """A field that only reads an attribute: of a scalar or enum (a leaf), or of an object type."""

    attribute: str
    type: GraphQLLeafType | GraphQLObjectType
    nullable: bool


Plans = dict[Callable[..., Any] | None, PlainField | None]  # a field's resolver -> its plan
_PLANS: WeakKeyDictionary[GraphQLSchema, Plans] = WeakKeyDictionary()


def plain_field(field: GraphQLField) -> PlainField | None:
    """The plan of a field strawberry resolves by reading an attribute, if it returns a scalar, an enum
    or an object type without `is_type_of` (never a list, an interface or a union)."""
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    # `_is_default` is strawberry's mark of the resolver it gives a plain field (no resolver of its own,
    # no extension, permission or exception handler); it reads `python_name` with the default resolver.
    if not isinstance(definition, StrawberryField) or not getattr(field.resolve, "_is_default", False):
        return None
    if definition.default_resolver is not getattr or field.args:
        return None
    nullable = not isinstance(field.type, GraphQLNonNull)
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        return PlainField(definition.python_name, inner, nullable)
    if isinstance(inner, GraphQLObjectType) and inner.is_type_of is None:
        return PlainField(definition.python_name, inner, nullable)
    return None


class Executor(PerEventExecutor):
    """Complete a field that only reads an attribute (`Book.name`, `BookEdge.node`) without graphql-core's
    general path: no resolve info, no argument values, no walk down `complete_value`.

    A page of 20 books is about 140 fields, 120 of them such reads; graphql-core builds a resolve info for
    each (which strawberry's resolver of a plain attribute never reads), then walks `complete_value`
    through the non-null, list, leaf and object checks. Here a scalar or enum is read and coerced
    directly, and an object's subfields are executed directly. A value that is null for a non-null
    field, an exception, an awaitable, or one the scalar refuses goes graphql-core's way from the start,
    so errors and results are graphql-core's own: reading an attribute twice does no harm.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plans = _PLANS.setdefault(self.schema, {})
        # strawberry passes a manager for every operation, with the extensions that hook `resolve` (none
        # of ours do); any middleware at all and every field goes graphql-core's way.
        manager = self.middleware_manager
        self.plain_fields = manager is None or not manager.middlewares

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
            try:
                plan = self.plans[field.resolve]
            except KeyError:
                plan = self.plans[field.resolve] = plain_field(field)
            if plan is not None:
                completed = self._complete_plain(
                    plan, field, source, field_details_list, path, position_context
                )
                if completed is not _GENERAL:
                    return completed
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _complete_plain(
        self,
        plan: PlainField,
        field: GraphQLField,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """The completed value of a plain field, or _GENERAL."""
        try:
            value = getattr(source, plan.attribute)
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
