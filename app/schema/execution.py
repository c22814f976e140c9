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


class PlainLeaf(NamedTuple):
    """A field that only reads an attribute and returns a scalar or enum."""

    attribute: str
    leaf: GraphQLLeafType
    nullable: bool


Plans = dict[Callable[..., Any] | None, PlainLeaf | None]  # a field's resolver -> its plan
_PLANS: WeakKeyDictionary[GraphQLSchema, Plans] = WeakKeyDictionary()


def plain_leaf(field: GraphQLField) -> PlainLeaf | None:
    """The plan of a field strawberry resolves by reading an attribute, if it returns a scalar or enum."""
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    # `_is_default` is strawberry's mark of the resolver it gives a plain field (no resolver of its own,
    # no extension, permission or exception handler); it reads `python_name` with the default resolver.
    if not isinstance(definition, StrawberryField) or not getattr(field.resolve, "_is_default", False):
        return None
    if definition.default_resolver is not getattr or field.args:
        return None
    nullable = not isinstance(field.type, GraphQLNonNull)
    leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        return None
    return PlainLeaf(definition.python_name, leaf, nullable)


class Executor(PerEventExecutor):
    """Complete a plain field of a scalar or enum (`Book.name`, `Book.price`) without graphql-core's
    general path: no resolve info, no argument values, no walk down `complete_value`.

    A page of 20 books is about 140 fields, 100 of them such leaves; graphql-core builds a resolve info
    for each (which strawberry's resolver of a plain attribute never reads), then walks `complete_value`
    through the non-null, list and leaf checks. Here such a field's attribute is read and coerced
    directly. Anything unusual (null for a non-null field, an exception, an awaitable, a value the
    scalar refuses) goes graphql-core's way from the start, so errors and results are graphql-core's
    own: reading an attribute twice does no harm.
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
                plan = self.plans[field.resolve] = plain_leaf(field)
            if plan is not None:
                value = self._complete_plain(plan, source)
                if value is not _GENERAL:
                    return value
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _complete_plain(self, plan: PlainLeaf, source: Any) -> Any:
        """The completed value of a plain scalar or enum field, or _GENERAL."""
        try:
            value = getattr(source, plan.attribute)
            if value is None or value is Undefined:
                return None if plan.nullable else _GENERAL
            if isinstance(value, Exception) or self.is_awaitable(value):
                return _GENERAL
            coerced = plan.leaf.coerce_output_value(value)
        except Exception:
            return _GENERAL
        return _GENERAL if coerced is None or coerced is Undefined else coerced
