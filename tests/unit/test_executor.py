"""The schema's Executor answers as graphql-core's own path does: same data, same errors, same paths."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import gc
from collections.abc import Callable
from typing import Any

import pytest
import strawberry
from graphql import execute, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from app.domain.catalog.status import BookStatus
from app.queries.paging import Edge, Page
from app.queries.rows import BookRow
from app.schema import build_schema
from app.schema.catalog.types import Book
from app.schema.connections import Connection, page_connection
from app.schema.execution import _OPERATION_SHAPES, Executor, plain_field, reader
from app.schema.extensions import PerEventExecutor
from app.schema.scalars import SCALARS

NOW = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)


class Elsewhere(enum.Enum):
    IN_STOCK = "IN_STOCK"  # BookStatus has a member of this value; strawberry takes it by its value
    GONE = "GONE"


def book(n: int, **changes: Any) -> BookRow:
    """A book as the read model gives it (a BookRow is a Book's source), any of its values replaced."""
    fields: dict[str, Any] = {
        "id": f"00000000-0000-0000-0000-{n:012}",
        "name": f"Book {n}",
        "description": None if n % 2 else "A book.",
        "price": decimal.Decimal(f"{n}.5"),
        "price_sale": None,
        "status": list(BookStatus)[n % len(BookStatus)],
        "average_rating": n / 3,
        "total_reviews": n,
        "version": n + 1,
        "created_at": NOW,
        "updated_at": NOW,
        "category_id": None,  # Book.category and .publisher resolve to null without loaders
        "category_name": "Fiction",
        "publisher_id": None,
        "publisher_name": "Penguin",
        "author_ids": (),
        "author_names": (),
    }
    return BookRow(**(fields | changes))


PAGES: dict[str, list[BookRow]] = {
    "plain": [book(n) for n in range(20)],
    "null for a non-null field": [book(0), book(1, name=None), book(2)],
    "a value the scalar refuses": [book(0, price="not a decimal"), book(1, version="7")],
    "an enum value that is not one": [book(0, status="GONE")],
    "a member of another enum": [book(0, status=Elsewhere.IN_STOCK), book(1, status=Elsewhere.GONE)],
    "an exception as the value": [book(0, name=ValueError("kept as a value"))],
    "null where null is allowed": [book(0, description=None, price_sale=None)],
    "a float for an Int": [book(0, version=2.5, total_reviews=3.0)],
    "an Int out of range": [book(0, version=2**31), book(1, version=-(2**31) - 1)],
    "a bool for an Int, a number for a String": [book(0, version=True, total_reviews=False, name=5)],
    "an Int at its bounds": [book(0, version=2**31 - 1, total_reviews=-(2**31))],
}

FINE = (
    "plain",
    "null where null is allowed",
    "a bool for an Int, a number for a String",
    "an Int at its bounds",
)
DIRECTIVES = """query($with: Boolean = true, $without: Boolean = true) {
  __typename books { __typename e: edges { __typename cursor node { id @include(if: $with)
    name @skip(if: $without) ... on Book { price } } } pageInfo { startCursor } } }"""
QUERIES = [
    "{ books { edges { cursor node { id name price status version } } } }",
    """{ books { totalCount pageInfo { hasNextPage endCursor }
         edges { node { __typename id n: name name description price priceSale averageRating
                        totalReviews createdAt updatedAt ...More } } } }
       fragment More on Book { status version name }""",
]


EDGES: dict[str, Callable[[list[Any]], Any]] = {
    "a list": list,
    "a tuple": tuple,
    "a generator": lambda edges: (edge for edge in edges),
    "a null edge": lambda edges: [*edges, None],
    "an edge whose position is not one": lambda edges: [*edges, Edge(None, book(9))],  # type: ignore[arg-type]
}


def schema(
    page: list[BookRow],
    executor: type[Any],
    extensions: list[Any] | None = None,
    edges_as: Callable[[list[Any]], Any] = list,
) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        def books(self) -> Connection[Book]:
            edges = [Edge(("NAME:asc", f"Book {n}", node.id), node) for n, node in enumerate(page)]
            return page_connection(Page(edges_as(edges), False, True, len(page)))

    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=executor,
        extensions=extensions or [],
    )


def answer(result: Any) -> tuple[Any, list[Any]]:
    return result.data, [error.formatted for error in result.errors or []]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("query", QUERIES)
def test_the_executor_answers_as_graphql_core_does(page: str, query: str) -> None:
    general = answer(schema(PAGES[page], PerEventExecutor).execute_sync(query))
    short = answer(schema(PAGES[page], Executor).execute_sync(query))
    assert short == general
    assert bool(general[1]) is (page not in FINE), "each odd page gives at least one error"


@pytest.mark.parametrize("edges", EDGES)
@pytest.mark.parametrize("query", [*QUERIES, DIRECTIVES])
def test_the_executor_answers_as_graphql_core_does_whatever_the_edges_are(edges: str, query: str) -> None:
    general = answer(schema(PAGES["plain"], PerEventExecutor, edges_as=EDGES[edges]).execute_sync(query))
    short = answer(schema(PAGES["plain"], Executor, edges_as=EDGES[edges]).execute_sync(query))
    assert short == general
    # pageInfo's cursors are the first and last edge's: a generator has neither, a null edge no cursor.
    fails = edges == "a null edge" or (edges.startswith("an edge") and "cursor" in query.lower())
    fails = fails or (edges == "a generator" and "Cursor" in query)
    assert bool(general[1]) is fails, general[1]


@pytest.mark.parametrize(
    ("variables", "keys"),
    [({}, {"id", "price"}), ({"with": False}, {"price"}), ({"without": False}, {"id", "name", "price"})],
)
def test_include_and_skip_follow_each_requests_variables(variables: dict[str, Any], keys: set[str]) -> None:
    page = schema(PAGES["plain"], Executor)
    result = page.execute_sync(DIRECTIVES, variable_values=variables)
    assert result.errors is None and result.data is not None
    assert set(result.data["books"]["e"][0]["node"]) == keys


def test_executions_of_one_document_share_shapes_unless_a_directive_can_change_them() -> None:
    graphql_schema = schema(PAGES["plain"], Executor)._schema
    with_directives, without = parse(DIRECTIVES), parse(QUERIES[1])
    for variables, keys in (({}, {"id", "price"}), ({"with": False}, {"price"}), ({"without": False}, None)):
        result = execute(graphql_schema, with_directives, variable_values=variables, executor_class=Executor)
        assert result.errors is None and result.data is not None
        assert set(result.data["books"]["e"][0]["node"]) == (keys or {"id", "name", "price"})
    assert _OPERATION_SHAPES[id(with_directives.definitions[0])] is None  # type: ignore[index]
    sizes = []
    for _ in range(3):
        result = execute(graphql_schema, without, executor_class=Executor)
        assert result.errors is None
        shared = _OPERATION_SHAPES[id(without.definitions[0])]  # type: ignore[index]
        assert shared is not None
        sizes.append(len(shared))
    assert sizes == [4, 4, 4]  # the connection's shape, its page info's, an edge's and a book's: once
    operation = id(without.definitions[0])
    del without, result
    gc.collect()
    assert operation not in _OPERATION_SHAPES  # gone with the operation


class Counting(Executor):
    """The schema's executor, counting the fields that go graphql-core's way (a field at a time)."""

    general = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        Counting.general += 1
        return super().execute_field(*args, **kwargs)


@pytest.mark.parametrize(
    ("query", "general"),
    [
        # The root field is a resolver; everything below it only reads (or derives the cursor): one object.
        (QUERIES[0], 1),
        # `category` is a resolver: no object that holds it is flat, so every field above it goes on its own
        # (the root, the connection's two, each edge's two, each node's two); `category { name }` is flat.
        (
            "{ books { totalCount edges { cursor node { name category { name } } } } }",
            1 + 2 + 20 * 2 + 20 * 2,
        ),
    ],
)
async def test_an_object_whose_fields_only_read_is_completed_in_one_go(query: str, general: int) -> None:
    Counting.general = 0
    result = await schema(PAGES["plain"], Counting).execute(query)
    assert result.errors is None, result.errors
    assert Counting.general == general


class Shout(SchemaExtension):
    """A field middleware: with one, every field goes graphql-core's way."""

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


def test_a_field_middleware_still_sees_every_field() -> None:
    query = "{ books { edges { node { name } } } }"
    result = schema(PAGES["plain"], Executor, [Shout]).execute_sync(query)
    assert result.errors is None
    assert result.data is not None
    assert result.data["books"]["edges"][0]["node"]["name"] == "BOOK 0"


@pytest.mark.parametrize("page", ["plain", "null for a non-null field", "an async field that fails"])
async def test_the_executor_answers_asynchronously_too(page: str) -> None:
    # Book.category is a resolver of its own, awaited inside the node's subfields; with no loaders in
    # the context it fails when a book names a category.
    query = "{ books { edges { node { name category { name } version } } totalCount } }"
    books = PAGES.get(page) or [book(0), book(1, category_id="c1"), book(2)]
    general = answer(await schema(books, PerEventExecutor).execute(query))
    short = answer(await schema(books, Executor).execute(query))
    assert short == general
    assert bool(general[1]) is (page != "plain")


def test_only_plain_scalar_enum_and_object_fields_take_the_short_path() -> None:
    types = build_schema()._schema.type_map
    book_fields = types["Book"].fields  # type: ignore[union-attr]
    assert plain_field(book_fields["price"]) is not None
    assert plain_field(book_fields["status"]) is not None
    assert plain_field(book_fields["category"]) is None  # a resolver of its own
    assert plain_field(types["BookEdge"].fields["node"]) is not None  # type: ignore[union-attr]  # an object
    assert plain_field(types["BookConnection"].fields["edges"]) is None  # type: ignore[union-attr]  # a list


def test_flat_shapes_read_attributes_lists_of_them_and_derived_fields_only() -> None:
    types = build_schema()._schema.type_map
    assert reader(types["Book"].fields["price"]) is not None  # type: ignore[union-attr]
    assert reader(types["Book"].fields["category"]) is None  # type: ignore[union-attr]  # async, a resolver
    assert reader(types["BookConnection"].fields["edges"]) is not None  # type: ignore[union-attr]  # a list
    assert reader(types["BookEdge"].fields["cursor"]) is not None  # type: ignore[union-attr]  # DERIVED
    assert reader(types["Query"].fields["books"]) is None  # type: ignore[union-attr]  # arguments
