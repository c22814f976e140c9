"""Catalog subscriptions: replay what the client missed after `after`, then live, from the hub."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import strawberry

from app.domain.errors import ValidationError
from app.domain.fields import check_id
from app.live.notices import CATALOG_TOPIC, ChangeNotice, book_topic
from app.schema import described
from app.schema.catalog.types import BookChange, CatalogChange, ChangeKind
from app.schema.context import Info
from app.schema.positions import BadCursor, Position, parse_cursor


def after_position(after: str | None) -> Position | None:
    """Parse the `after` argument; a malformed one is a clear error before anything is sent."""
    if after is None:
        return None
    try:
        return parse_cursor(after)
    except BadCursor:
        raise ValidationError.single("after", "Not a position Bookworm returned.") from None


async def resume_position(info: Info, after: str | None) -> Position | None:
    """Parse `after` and check its changes are still kept (else ResumeTooOld), before the stream starts."""
    position = after_position(after)
    if position is not None:
        await require_handed_out(info, position)
        await info.context.container.hub.check_resume(position)
    return position


async def require_handed_out(info: Info, position: Position) -> None:
    """Refuse a position beyond the newest event: the subscription would wait, silent, until it came."""
    if position > await info.context.container.event_store.newest():
        raise ValidationError.single("after", "Beyond the newest event: not a position Bookworm returned.")


async def notices(info: Info, topic: str, after: Position | None) -> AsyncGenerator[ChangeNotice, None]:
    """Yield the topic's notices; close the hub's iterator when the client goes away."""
    stream: AsyncIterator[ChangeNotice] = info.context.container.hub.subscribe(topic, after)
    try:
        async for notice in stream:
            yield notice
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def book_changes(info: Info, topic: str, after: Position | None) -> AsyncGenerator[BookChange, None]:
    async for notice in notices(info, topic, after):
        yield BookChange(
            kind=ChangeKind(notice.kind),
            position=str(notice.position),
            book_id=strawberry.ID(notice.entity_id),
        )


async def catalog_changes(info: Info, after: Position | None) -> AsyncGenerator[CatalogChange, None]:
    async for notice in notices(info, CATALOG_TOPIC, after):
        yield CatalogChange(
            kind=ChangeKind(notice.kind),
            position=str(notice.position),
            entity=notice.entity,
            entity_id=strawberry.ID(notice.entity_id),
        )


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
