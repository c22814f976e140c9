"""Measure an operation before it is validated or run: depth, aliases, fields and cost, in one walk.

The walk is linear in the document's size. A fragment is measured once and its figures are reused at
every spread, so figures multiply rather than being walked again: a fragment spread twice counts twice,
and a fragment "bomb" (each fragment spreading the next one twice) gets astronomically large figures
in microseconds. Operations and fragments the document holds but does not run add their fields and
aliases once, as written: validation reads the whole document. Unknown fields, types and fragments,
and fragment cycles, count as plain fields or as nothing: validation, which runs afterwards, reports
them.

Cost model: a leaf field (scalar or enum) costs 0. A field with a selection costs n x (1 + the cost of
its selection), where n is
- its `first` argument when the field has one: the literal, else the variable's value, else the
  variable's default, else the argument's default in the schema, else `list_size_estimate`
  (clamped to 1..10,000);
- else `list_size_estimate` when the field is a list and its parent is not a Relay connection (a type
  named `...Connection`: its `edges` are already paid for by the connection's `first`);
- else 1.
Inline fragments and fragment spreads add the cost of their selection at their own level. An
operation costs the sum over its root fields, and at least 1. Introspection is counted the same way,
except that `ofType` (the type a list or non-null `__Type` wraps) costs only its selection: a chain of
wrappers spells one type. GraphiQL's introspection query then costs about 500 (with
`list_size_estimate` 5); deeper ones, such as `types { fields { type { fields { ... } } } }`, grow
fivefold with each list.

Depth counts nested fields (a root field is at depth 1); introspection fields (`__schema`, `__type`,
`__typename`) and what they select do not count, so GraphiQL's introspection query passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from app.admission.counting import Counter, count_unused, fragment_order, page_size

INTROSPECTION = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}
CONNECTION_SUFFIX = "Connection"
# Introspection's list and non-null wrappers: a chain of them spells one type, so it is not paid per link.
WRAPPED = ("__Type", "ofType")
Parent = GraphQLObjectType | GraphQLInterfaceType | None


@dataclass(frozen=True, slots=True)
class Analysis:
    """The figures of one operation, as it would be executed (fragments expanded)."""

    depth: int
    aliases: int
    fields: int
    cost: int
    mutation_fields: int
    operation_type: str | None  # "query", "mutation", "subscription"; None when there is none to run
    introspection: bool


UNKNOWN_OPERATION = Analysis(
    depth=0, aliases=0, fields=0, cost=1, mutation_fields=0, operation_type=None, introspection=False
)


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    list_size_estimate: int,
) -> Analysis:
    """Measure the operation that would run, in one walk of the document."""
    operation = _operation(document, operation_name)
    if operation is None:
        unused = count_unused(document, None, ())
        return replace(UNKNOWN_OPERATION, aliases=unused.aliases, fields=unused.fields)
    # Variables are the request's JSON: anything but an object leaves every `first` to its defaults.
    walk = _Walk(schema, operation, variables if isinstance(variables, Mapping) else {}, list_size_estimate)
    walk.measure_fragments(document)
    root = walk.selection_set(operation.selection_set, schema.get_root_type(operation.operation))
    # Validation reads the whole document: what is not run counts too, once, as written.
    unused = count_unused(document, operation, walk.fragments)
    kind = operation.operation.value
    return Analysis(
        depth=root.depth,
        aliases=root.aliases + unused.aliases,
        fields=root.fields + unused.fields,
        cost=max(1, root.cost),
        mutation_fields=root.roots if kind == "mutation" else 0,
        operation_type=kind,
        introspection=root.introspection,
    )


def _own_cost(name: str, parent: Parent) -> int:
    """Return what a field with a selection costs besides its selection: 1, but 0 for `ofType`."""
    return 0 if parent is not None and (parent.name, name) == WRAPPED else 1


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """Return the operation GraphQL would run: the one named, else the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        return next((o for o in operations if o.name is not None and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


class _Walk:
    """One analysis: the fragments' figures, measured once, and the walk of selection sets."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        list_size_estimate: int,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.defaults = {v.variable.name.value: v.default_value for v in operation.variable_definitions or ()}
        self.estimate = list_size_estimate
        self.fragments: dict[str, Counter] = {}
        self.operation = operation

    def measure_fragments(self, document: DocumentNode) -> None:
        """Measure the fragments the operation uses, each after the fragments it spreads."""
        definitions = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        if not definitions:
            return
        for name in fragment_order(definitions, self.operation.selection_set):
            fragment = definitions[name]
            # A spread of a fragment not measured yet is one in a cycle: it counts as nothing.
            self.fragments[name] = self.selection_set(
                fragment.selection_set, self._type(fragment.type_condition.name.value)
            )

    def selection_set(self, selection_set: SelectionSetNode, parent: Any) -> Counter:
        """Return the figures of one selection set, on a parent type (None when unknown)."""
        counter = Counter()
        parent = parent if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self._field(counter, selection, parent)
            elif isinstance(selection, FragmentSpreadNode):
                spread = self.fragments.get(selection.name.value)
                if spread is not None:
                    counter.add(spread)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self._type(condition.name.value) if condition is not None else parent
                counter.add(self.selection_set(selection.selection_set, inner))
        return counter

    def _field(self, counter: Counter, node: FieldNode, parent: Parent) -> None:
        name = node.name.value
        definition = INTROSPECTION.get(name) or (parent.fields.get(name) if parent is not None else None)
        counter.roots += 1
        counter.fields += 1
        if node.alias is not None:
            counter.aliases += 1
        if name in INTROSPECTION:
            counter.introspection = True
        if node.selection_set is None:
            if not name.startswith("__"):
                counter.depth = max(counter.depth, 1)
            return
        inner_type = get_named_type(definition.type) if definition is not None else None
        inner = self.selection_set(node.selection_set, inner_type)
        counter.fields += inner.fields
        counter.aliases += inner.aliases
        counter.introspection = counter.introspection or inner.introspection
        counter.cost += self._size(node, definition, parent) * (_own_cost(name, parent) + inner.cost)
        if not name.startswith("__"):
            counter.depth = max(counter.depth, 1 + inner.depth)

    def _size(self, node: FieldNode, definition: GraphQLField | None, parent: Parent) -> int:
        """Return how many items a field with a selection is counted as: its n in the cost model."""
        if definition is None:
            return 1
        first = definition.args.get("first")
        if first is not None:
            return page_size(node, first, self.variables, self.defaults, self.estimate)
        if is_list_type(get_nullable_type(definition.type)):
            if parent is None or not parent.name.endswith(CONNECTION_SUFFIX):
                return self.estimate
        return 1

    def _type(self, name: str) -> Any:
        return self.schema.get_type(name)
