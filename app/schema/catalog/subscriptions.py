"""Catalog subscriptions: one book's changes and every catalog change, replayed after `after`, then live."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.domain.fields import check_id
from app.live.notices import CATALOG_TOPIC, ChangeNotice, book_topic
from app.schema import described
from app.schema.catalog.types import BookChange, CatalogChange, ChangeKind
from app.schema.context import Info
from app.schema.positions import Position
from app.schema.subscriptions import public_changes, resume_position


def book_change(notice: ChangeNotice) -> BookChange:
    return BookChange(
        kind=ChangeKind(notice.kind),
        position=str(notice.position),
        book_id=strawberry.ID(notice.entity_id),
    )


def catalog_change(notice: ChangeNotice) -> CatalogChange:
    return CatalogChange(
        kind=ChangeKind(notice.kind),
        position=str(notice.position),
        entity=notice.entity,
        entity_id=strawberry.ID(notice.entity_id),
    )


def book_changes(info: Info, topic: str, after: Position | None) -> AsyncGenerator[BookChange, None]:
    return public_changes(info, topic, after, book_change)


def catalog_changes(info: Info, after: Position | None) -> AsyncGenerator[CatalogChange, None]:
    return public_changes(info, CATALOG_TOPIC, after, catalog_change)


@strawberry.type
class CatalogSubscription:
    # Plain async resolvers that return the generator: bad arguments fail before the stream starts,
    # so clients get a protocol-level error instead of a first event carrying one.
    @described.subscription("Changes of one book; `after` replays what was missed first.")
    async def book_changed(
        self, info: Info, id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[BookChange, None]:
        topic = book_topic(check_id("id", id))
        return book_changes(info, topic, await resume_position(info, after))

    @described.subscription("Every catalog change; `after` replays what was missed first.")
    async def catalog_changed(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[CatalogChange, None]:
        return catalog_changes(info, await resume_position(info, after))
