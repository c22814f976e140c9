"""Relay connections: `first`/`after` paging with edges, pageInfo and totalCount."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Generic, TypeVar, cast

import strawberry
from graphql import FieldNode

from app.queries.paging import Edge as ReadEdge
from app.queries.paging import Page
from app.schema.context import Info
from app.schema.execution import DERIVED

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


def _items(root: Any) -> list[Edge[Any]]:
    return cast("list[Edge[Any]]", root.items)  # a tuple: a list field takes any sequence


def _itself(root: Any) -> PageInfo:
    return cast(PageInfo, root)


@strawberry.type
class Connection(Generic[T]):
    """A read-side Page is its own connection (see page_connection): these fields read it."""

    edges: list[Edge[T]] = strawberry.field(resolver=_items, metadata={DERIVED: True})
    page_info: PageInfo = strawberry.field(resolver=_itself, metadata={DERIVED: True})
    total_count: int


def page_size(first: int | None, default: int) -> int:
    """An explicit null `first` means the default; the read side checks the bounds."""
    return default if first is None else first


def selects(info: Info, name: str) -> bool:
    """Whether the field `info` resolves may select `name` among its own subfields: it does by name, or a
    fragment might (not followed: a yes is always safe)."""
    for node in info._raw_info.field_nodes:
        for selection in node.selection_set.selections if node.selection_set else ():
            if not isinstance(selection, FieldNode) or selection.name.value == name:
                return True
    return False


def page_connection(page: Page[Any], node: Callable[[Any], T] | None = None) -> Connection[T]:
    """The connection of one read-side page: the page itself, its nodes turned into `node`'s when given.

    Nothing is copied per row. The page is what the GraphQL types read: Connection's `edges` are its items
    and its `pageInfo` is the page (whose cursors are encoded only when asked for); each item is an Edge of
    `app.queries.paging`, with the `node` and the lazily encoded `cursor` the GraphQL Edge reads. Without
    `node`, the rows are the nodes as they are (a BookRow is a Book's source: Book.from_row).

    A page that was not counted (its request does not select `totalCount`, see `selects`) has a
    total_count of None: were it read all the same, the non-null field would fail the request rather than
    answer a wrong count.
    """
    if node is not None:
        page = replace(page, items=tuple(ReadEdge(edge.position, node(edge.node)) for edge in page.items))
    return cast("Connection[T]", page)
