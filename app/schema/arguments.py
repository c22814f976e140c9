"""Argument conversion planned once per field: graphql-core's coerced values into the resolver's keywords.

strawberry's `convert_arguments` works each request out from the annotations: for every argument and
every field of an input type it resolves the field's type, converts the Python name to the GraphQL name
again and walks `convert_argument`'s type checks (a `CreateBookInput` of eight fields: about 60 µs of a
`createBook`). A `Plan` does that walk once, when the schema is built, and keeps per argument and per
input field only what a request needs: the GraphQL name to look up, the Python name to set, and how to
convert the value (nothing for a scalar or an enum, whose coerced value is its own conversion).

Whatever the plan does not cover, it leaves to strawberry's `convert_argument` for that whole argument,
with the same path and info: a `Maybe`, a `GlobalID`, an input type that builds its own value
(`from_input`), or a type strawberry itself would refuse. The values built are strawberry's own (the
same classes, the same keywords, omitted fields at the same defaults); tests/unit/test_arguments.py
compares the two on every argument of the schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import (
    StrawberryArgument,
    _is_leaf_type,
    _is_optional_leaf_type,
    convert_argument,
)
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    StrawberryType,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.private import is_private
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
# A planned argument: its GraphQL name, its Python name, how its value converts (None: it is its own
# conversion), and the argument itself when strawberry converts it (the plan does not cover its type).
Step = tuple[str, str, Convert | None, StrawberryArgument | None]


class Unplanned(Exception):
    """A type whose values the plan leaves to strawberry's `convert_argument`."""


class Planner:
    """Plans the conversion of a schema's arguments; an input type is planned once for all its uses."""

    def __init__(self, registry: Mapping[object, Any], config: StrawberryConfig) -> None:
        self.registry = registry
        self.config = config
        self._inputs: dict[type, Convert] = {}

    def plan(self, arguments: list[StrawberryArgument]) -> Plan:
        """The plan of a field's arguments."""
        steps: list[Step] = []
        for argument in arguments:
            assert argument.python_name
            name = self.config.name_converter.from_argument(argument)
            try:
                steps.append((name, argument.python_name, self.value(argument.type), None))
            except Unplanned:
                steps.append((name, argument.python_name, None, argument))
        return Plan(tuple(steps), self.registry, self.config)

    def value(self, type_: StrawberryType | type) -> Convert | None:
        """How a value of `type_` converts, as `convert_argument` would; None when it is its own value."""
        if isinstance(type_, StrawberryMaybe):
            raise Unplanned(type_)
        if isinstance(type_, StrawberryOptional):
            return self.value(type_.of_type)
        if isinstance(type_, StrawberryList):
            return self._list(type_)
        if _is_leaf_type(type_, self.registry):
            if type_ is GlobalID:
                raise Unplanned(type_)
            return None
        if isinstance(type_, LazyType):
            return self.value(type_.resolve_type())
        if has_enum_definition(type_):
            return None  # graphql-core's coercion already made the member
        if has_object_definition(type_):
            return self._input(type_)
        raise Unplanned(type_)

    def _list(self, type_: StrawberryList) -> Convert:
        item_type = type_.of_type
        leaf = _is_leaf_type(item_type, self.registry, skip_classes=(GlobalID,))
        if leaf or _is_optional_leaf_type(item_type, self.registry, skip_classes=(GlobalID,)):
            return _copied
        item = self.value(item_type) or _same

        def convert(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            return [item(x) for x in value]

        return convert

    def _input(self, cls: type) -> Convert:
        known = self._inputs.get(cls)
        if known is not None:
            return known
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        if definition.from_input is not None:
            raise Unplanned(cls)
        # Like strawberry, an input's fields without a default start at None (graphql-core has refused a
        # required one that is missing); each given field then replaces its default.
        defaults: dict[str, Any] = {}
        if definition.is_input:
            defaults = {
                field.python_name: None
                for field in definition.fields
                if field.default_value is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            }
        fields: list[tuple[str, str, Convert | None]] = []

        def build(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            kwargs = defaults.copy()
            for name, python_name, convert in fields:
                if name in value:
                    kwargs[python_name] = value[name] if convert is None else convert(value[name])
            return cls(**kwargs)

        planned = set(self._inputs)
        self._inputs[cls] = build  # before its fields: an input type may hold itself
        try:
            for field in definition.fields:
                if is_private(field.type):
                    continue  # not in the schema: graphql-core never gives it a value
                field_type = field.resolve_type(type_definition=definition)
                fields.append(
                    (self.config.name_converter.from_field(field), field.python_name, self.value(field_type))
                )
        except Unplanned:
            for planned_here in set(self._inputs) - planned:  # they may hold this unfinished one
                del self._inputs[planned_here]
            raise
        return build


class Plan:
    """A field's arguments, converted from graphql-core's values into the resolver's keywords."""

    __slots__ = ("config", "registry", "steps")

    def __init__(self, steps: tuple[Step, ...], registry: Mapping[object, Any], config: StrawberryConfig):
        self.steps = steps
        self.registry = registry
        self.config = config

    def convert(self, values: dict[str, Any], info: Any) -> dict[str, Any]:
        """The resolver's keyword arguments from graphql-core's argument values (`convert_arguments`)."""
        kwargs: dict[str, Any] = {}
        for name, python_name, convert, unplanned in self.steps:
            if name not in values:
                continue
            value = values[name]
            if unplanned is not None:
                kwargs[python_name] = convert_argument(
                    value, unplanned.type, self.registry, self.config, info, path=(name,)
                )
            elif convert is None:
                kwargs[python_name] = value
            else:
                kwargs[python_name] = convert(value)
        return kwargs


def _copied(value: Any) -> Any:
    # Copied as strawberry does: graphql-core gives every request that omits the value the same default.
    if value is None or value is UNSET:
        return value
    return list(value)


def _same(value: Any) -> Any:
    return value
