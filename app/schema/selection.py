"""What a request reads of the rows a field returns, so that the read side fetches those columns only.

A field's source rows are read attribute by attribute (a BookRow is a Book's source). `source_reads` tells
which attributes a request can read below a field: the names of the plain fields it selects, and for a
field with a resolver of its own the attributes it declares with `READS` in its metadata. It follows
fragments without asking whether their type condition applies, and ignores @skip and @include: it may
name more than is read, never less. Where it cannot tell (a selected field with a resolver that declares
nothing) it says None, and every column is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast
from weakref import finalize

import strawberry
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    get_named_type,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

READS = "bookworm.reads"  # a resolver field's metadata: the attributes of its parent it reads
F = TypeVar("F", bound=Callable[..., Any])
ResolveInfo = GraphQLResolveInfo[Any]
Reads = frozenset[str] | None
# (path, the ids of a field's nodes) -> what `source_reads` found, while the first node lives. By identity:
# graphql-core's nodes hash and compare by content, deeply.
_KNOWN: dict[tuple[Any, ...], Reads] = {}
_UNKNOWN: Any = object()


def field_reading(*attributes: str) -> Callable[[F], F]:
    """A strawberry field with a resolver of its own that reads these attributes of its parent."""
    return cast("Callable[[F], F]", strawberry.field(metadata={READS: attributes}))


def source_reads(info: ResolveInfo, path: tuple[str, ...] = ()) -> Reads:
    """The attributes a request can read of the sources below the field `info` resolves, `path` down
    (("edges", "node") for a connection's nodes); None when it cannot tell."""
    key = (path, *map(id, info.field_nodes))
    known = _KNOWN.get(key, _UNKNOWN)
    if known is _UNKNOWN:
        known = _KNOWN[key] = _reads(info, path)
        finalize(info.field_nodes[0], _KNOWN.pop, key, None)
    return known  # type: ignore[no-any-return]


def _reads(info: ResolveInfo, path: tuple[str, ...]) -> Reads:
    object_type, fields = get_named_type(info.return_type), list(info.field_nodes)
    for name in path:
        if not isinstance(object_type, GraphQLObjectType) or name not in object_type.fields:
            return None
        object_type = get_named_type(object_type.fields[name].type)
        fields = list(_subfields(fields, info, name))
    if not isinstance(object_type, GraphQLObjectType):
        return None
    found: set[str] = set()
    for field in _subfields(fields, info, None):
        name = field.name.value
        if name.startswith("__"):  # __typename: the type's name, read from no source
            continue
        if name not in object_type.fields:  # a fragment on another type, which these sources never are
            continue
        definition = object_type.fields[name].extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberryField):
            return None
        if definition.base_resolver is None:
            found.add(definition.python_name)
        elif READS in definition.metadata:
            found.update(definition.metadata[READS])
        else:
            return None
    return frozenset(found)


def _subfields(fields: Iterable[FieldNode], info: ResolveInfo, name: str | None) -> Iterator[FieldNode]:
    """The fields selected below `fields`, through fragments, named `name` (any for None)."""
    for field in fields:
        if field.selection_set is not None:
            yield from _selected(field.selection_set.selections, info, name)


def _selected(selections: Iterable[Any], info: ResolveInfo, name: str | None) -> Iterator[FieldNode]:
    # Validation refused fragment cycles, and admission bounds the depth of what is left.
    for selection in selections:
        if isinstance(selection, FieldNode):
            if name is None or selection.name.value == name:
                yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _selected(selection.selection_set.selections, info, name)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = info.fragments.get(selection.name.value)
            if fragment is not None:
                yield from _selected(fragment.selection_set.selections, info, name)
