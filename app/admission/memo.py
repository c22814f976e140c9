"""What admission learns about a parsed document, kept per document object.

The parse cache hands out the same document object for the same text, so an answer is found by the
document's identity: a document's own hash walks its whole tree on every lookup. An analysis depends on
the variables only through the `first` arguments that name one, so it is kept with the variables it read
and reused while those have the same values.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from graphql import DocumentNode, GraphQLError, GraphQLSchema, specified_rules, validate

from app.admission.analysis import Analysis, analyse

V = TypeVar("V")
CACHE_SIZE = 1024
RULES = tuple(specified_rules)
Reads = dict[str, tuple[bool, Any]]  # variable name -> (present, value)


class ByIdentity(Generic[V]):
    """The most recently used answers about objects, keyed by the objects' identities (which it holds)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[object, ...], tuple[tuple[object, ...], V]] = OrderedDict()

    def find(self, key: tuple[object, ...]) -> V | None:
        """Return the answer kept for `key`, or None."""
        # An entry holds its objects, so no other object can take one of their ids while it is kept.
        ids = _identities(key)
        found = self._entries.get(ids)
        if found is None:
            return None
        self._entries.move_to_end(ids)
        return found[1]

    def put(self, key: tuple[object, ...], value: V) -> None:
        """Keep `value` for `key`, dropping the least recently used answers past the size."""
        ids = _identities(key)
        self._entries[ids] = (key, value)
        self._entries.move_to_end(ids)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _identities(key: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(part if isinstance(part, str | int | None) else id(part) for part in key)


class _Recorded(Mapping[str, Any]):
    """The request's variables, recording each one the analysis looks at."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._variables = variables
        self.reads: Reads = {}

    def __getitem__(self, name: str) -> Any:
        value = self._variables[name]
        self.reads[name] = (True, value)
        return value

    def __contains__(self, name: object) -> bool:
        present = name in self._variables
        if isinstance(name, str) and not present:
            self.reads[name] = (False, None)
        return present

    def __iter__(self) -> Iterator[str]:
        raise TypeError("an analysis reads variables by name only")

    def __len__(self) -> int:
        raise TypeError("an analysis reads variables by name only")


def _same(reads: Reads, variables: Mapping[str, Any]) -> bool:
    for name, (present, value) in reads.items():
        if (name in variables) != present:
            return False
        if present and not (type(variables[name]) is type(value) and variables[name] == value):
            return False
    return True


_validations: ByIdentity[list[GraphQLError]] = ByIdentity()
_analyses: ByIdentity[tuple[Reads, Analysis]] = ByIdentity()


def validation(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    """Validate a document against the schema once per document object."""
    key = (schema, document)
    errors = _validations.find(key)
    if errors is None:
        errors = validate(schema, document, RULES)
        _validations.put(key, errors)
    return errors


def analysis(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    list_size_estimate: int,
) -> Analysis:
    """Return `analyse`'s answer, kept while the variables it read keep their values."""
    found = kept_analysis(schema, document, operation_name, variables, list_size_estimate=list_size_estimate)
    if found is not None:
        return found
    given: Mapping[str, Any] = variables if isinstance(variables, Mapping) else {}
    key = (schema, document, operation_name, list_size_estimate)
    recorded = _Recorded(given)
    measured = analyse(schema, document, operation_name, recorded, list_size_estimate=list_size_estimate)
    _analyses.put(key, (recorded.reads, measured))
    return measured


def kept_analysis(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    list_size_estimate: int,
) -> Analysis | None:
    """Return the analysis `analysis` kept for these arguments, or None: nothing is analysed."""
    given: Mapping[str, Any] = variables if isinstance(variables, Mapping) else {}
    kept = _analyses.find((schema, document, operation_name, list_size_estimate))
    if kept is not None and _same(kept[0], given):
        return kept[1]
    return None
