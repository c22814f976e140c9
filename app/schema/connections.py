"""Relay connections: `first`/`after` paging with edges, pageInfo and totalCount."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from app.queries.paging import Page, Position, encode_cursor
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


def page_connection(page: Page[Row], node: Callable[[Row], T]) -> Connection[T]:
    """Turn one read-side page into a connection."""
    return Connection(
        edges=[Edge(node=node(edge.node), position=edge.position) for edge in page.items],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        total_count=page.total_count,
    )
