"""The read side's objects are the sources of the GraphQL types that show them, with nothing copied: each
type's fields read them by name, so every name a type reads must be one its source has."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from app.queries import paging
from app.queries.rows import BookRow
from app.schema.catalog.types import Book
from app.schema.connections import Connection, Edge, PageInfo


def names(source: type[Any]) -> set[str]:
    """The attributes every instance of `source` has: its fields and its properties."""
    fields = set(getattr(source, "_fields", ())) or {f.name for f in dataclasses.fields(source)}
    return fields | {name for name, value in vars(source).items() if isinstance(value, property)}


def read(graphql_type: type[Any]) -> set[str]:
    """What a strawberry type reads from its source: the fields without a resolver of their own (the
    private ones included, which its resolvers read from `self`)."""
    fields = graphql_type.__strawberry_definition__.fields
    return {field.python_name for field in fields if field.base_resolver is None}


@pytest.mark.parametrize(
    ("graphql_type", "source"),
    [(Book, BookRow), (Edge, paging.Edge), (PageInfo, paging.Page), (Connection, paging.Page)],
)
def test_a_type_reads_only_names_its_source_has(graphql_type: type[Any], source: type[Any]) -> None:
    assert read(graphql_type) <= names(source), read(graphql_type) - names(source)


def test_book_reads_its_private_fields_and_they_are_the_rows() -> None:
    assert {"category_id", "publisher_id", "author_ids"} <= read(Book)  # what Book's resolvers read
    assert {"items", "total_count"} <= names(paging.Page)  # Connection's edges are the page's items


def test_a_page_is_its_connection_and_a_row_its_book() -> None:
    row = BookRow(*[None] * len(BookRow._fields))
    assert Book.from_row(row) is row
    page = paging.Page((paging.Edge(("NAME:asc", "A", "id"), row),), False, False, None)
    connection: Any = Connection  # the class's resolvers, called as strawberry calls them, with the root
    edges = connection.__strawberry_definition__.get_field("edges").base_resolver.wrapped_func(page)
    info = connection.__strawberry_definition__.get_field("page_info").base_resolver.wrapped_func(page)
    assert edges == page.items and edges[0].node is row and info is page
