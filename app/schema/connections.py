"""Relay connections: `first`/`after` paging with edges, pageInfo and totalCount."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import strawberry
from graphql import FieldNode

from app.queries.paging import Page, Position, encode_cursor
from app.schema.context import Info
from app.schema.execution import DERIVED

T = TypeVar("T")
Row = TypeVar("Row")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def _cursor(root: Any) -> str:
    """Encode an edge's cursor when the query asks for it, not for every edge of every page."""
    position: Position = root.position
    return encode_cursor(*position)


@strawberry.type
class Edge(Generic[T]):
    cursor: str = strawberry.field(resolver=_cursor, metadata={DERIVED: True})
    node: T
    position: strawberry.Private[Position]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
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


def page_connection(page: Page[Row], node: Callable[[Row], T]) -> Connection[T]:
    """Turn one read-side page into a connection.

    A page that was not counted (its request does not select `totalCount`, see `selects`) gives a
    connection whose total_count is None: were it read all the same, the non-null field would fail the
    request rather than answer a wrong count.
    """
    return Connection(
        edges=[Edge(node=node(edge.node), position=edge.position) for edge in page.items],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        total_count=cast(int, page.total_count),
    )
