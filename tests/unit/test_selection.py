"""source_reads names every attribute a request can read of a field's sources, and None when it cannot
tell: never fewer than are read."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import strawberry
from graphql import execute, parse

from app.schema.selection import _KNOWN, field_reading, source_reads

SEEN: list[Any] = []


@strawberry.type
class Item:
    name: str
    price: int
    secret: strawberry.Private[str]

    @field_reading("secret")
    def hint(self) -> str:
        return self.secret[:1]

    @strawberry.field
    def undeclared(self) -> str:
        return self.secret


@strawberry.type
class Holder:
    item: Item


@strawberry.type
class Query:
    @strawberry.field
    def item(self, info: strawberry.Info) -> Item:
        SEEN.append(source_reads(info._raw_info))
        return Item(name="a", price=1, secret="s")

    @strawberry.field
    def holder(self, info: strawberry.Info) -> Holder:
        SEEN.append(source_reads(info._raw_info, ("item",)))
        return Holder(item=Item(name="a", price=1, secret="s"))


SCHEMA = strawberry.Schema(query=Query)


def reads(document: str) -> Any:
    SEEN.clear()
    result = SCHEMA.execute_sync(document)
    assert result.errors is None, result.errors
    [found] = SEEN
    return found


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{ item { name } }", {"name"}),
        ("{ item { __typename } }", set()),
        ("{ item { n: name p: price name } }", {"name", "price"}),
        ("{ item { hint } }", {"secret"}),  # what the resolver declares it reads
        (
            "{ item { ...F } } fragment F on Item { price ...G } fragment G on Item { hint }",
            {"price", "secret"},
        ),
        ("{ item { ... on Item { price } ... { name } } }", {"price", "name"}),
        ("{ item { price @skip(if: true) name @include(if: false) } }", {"price", "name"}),  # more, not less
        ("{ item { name undeclared } }", None),  # a resolver that declares nothing: every attribute
        ("{ holder { item { price } } }", {"price"}),
        ("{ holder { item { price } ... { item { name } } } }", {"price", "name"}),
        ("{ holder { __typename } }", set()),
    ],
)
def test_source_reads_names_what_a_request_can_read(document: str, expected: set[str] | None) -> None:
    assert reads(document) == (None if expected is None else frozenset(expected))


def test_what_it_found_is_kept_while_the_document_lives() -> None:
    gc.collect()  # the documents of the tests before, which may be cyclic garbage by now
    before = set(_KNOWN)
    document = parse("{ item { name } }")
    for _ in range(3):
        SEEN.clear()
        assert execute(SCHEMA._schema, document).errors is None
        assert SEEN == [frozenset({"name"})]
    found = set(_KNOWN) - before
    assert len(found) == 1  # once for the three executions
    del document
    gc.collect()
    assert not found & set(_KNOWN)
