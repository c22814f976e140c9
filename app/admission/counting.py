"""The pieces of an analysis: figures that add up, the order to measure fragments in, page sizes."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
)

# `first` is counted within these bounds: a negative or absurd value neither crashes nor hides a cost.
SMALLEST_PAGE = 1
LARGEST_PAGE = 10_000
_DIGITS = len(str(LARGEST_PAGE))


class Counter:
    """The figures of one selection set; depth is relative to it, roots are its own fields."""

    __slots__ = ("aliases", "cost", "depth", "fields", "introspection", "roots")

    def __init__(self) -> None:
        self.depth = 0
        self.aliases = 0
        self.fields = 0
        self.cost = 0
        self.roots = 0
        self.introspection = False

    def add(self, other: Counter) -> None:
        """Add the figures of a selection at the same level (an inline fragment or a spread)."""
        self.depth = max(self.depth, other.depth)
        self.aliases += other.aliases
        self.fields += other.fields
        self.cost += other.cost
        self.roots += other.roots
        self.introspection = self.introspection or other.introspection


def fragment_order(
    definitions: Mapping[str, FragmentDefinitionNode], selection_set: SelectionSetNode
) -> list[str]:
    """Return the fragments a selection uses, each after the fragments it spreads; cycles are cut."""
    order: list[str] = []
    seen: set[str] = set()
    # Iterative depth-first search: a chain of a thousand fragments must not exhaust the stack.
    stack: list[tuple[str, Iterator[str]]] = [("", iter(_spreads(selection_set)))]
    while stack:
        name, spreads = stack[-1]
        spread = next(spreads, None)
        if spread is None:
            stack.pop()
            if name:
                order.append(name)
        elif spread in definitions and spread not in seen:
            seen.add(spread)
            stack.append((spread, iter(_spreads(definitions[spread].selection_set))))
    return order


def _spreads(selection_set: SelectionSetNode, found: list[str] | None = None) -> list[str]:
    """Return the names of the fragments spread anywhere in a selection set."""
    found = [] if found is None else found
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            found.append(selection.name.value)
        elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
            _spreads(selection.selection_set, found)
    return found


def count_unused(
    document: DocumentNode, operation: OperationDefinitionNode | None, fragments: Collection[str]
) -> Counter:
    """Count the fields and aliases, as written, of the definitions other than these."""
    counter = Counter()
    for definition in document.definitions:
        if definition is operation or not isinstance(definition, ExecutableDefinitionNode):
            continue
        if isinstance(definition, FragmentDefinitionNode) and definition.name.value in fragments:
            continue
        _count_written(definition.selection_set, counter)
    return counter


def _count_written(selection_set: SelectionSetNode, counter: Counter) -> None:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            counter.fields += 1
            counter.aliases += selection.alias is not None
        if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
            _count_written(selection.selection_set, counter)


def page_size(
    node: FieldNode,
    argument: GraphQLArgument,
    variables: Mapping[str, Any],
    defaults: Mapping[str, ValueNode | None],
    estimate: int,
) -> int:
    """Return the `first` a field is counted with: given, else its variable's, else the defaults."""
    given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
    if isinstance(given, VariableNode):
        name = given.name.value
        if name not in variables:
            given = defaults.get(name)
        elif variables[name] is not None:
            return _clamp(variables[name], estimate)
        else:
            given = None  # an explicit null means the argument's default
    if isinstance(given, IntValueNode):
        return _clamp(_literal(given.value), estimate)
    if given is not None and not isinstance(given, NullValueNode):
        return _clamp(None, estimate)  # not an Int: validation refuses it
    return _clamp(argument.default_value, estimate)


def _literal(text: str) -> int:
    """Convert an Int literal; one too long to be a page size is not even read (int(str) is bounded)."""
    if len(text) <= _DIGITS:
        return int(text)
    return SMALLEST_PAGE if text.startswith("-") else LARGEST_PAGE


def _clamp(value: Any, estimate: int) -> int:
    """Return an integer page size within bounds; anything but an integer counts as the estimate."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        value = estimate
    return int(min(max(value, SMALLEST_PAGE), LARGEST_PAGE))
