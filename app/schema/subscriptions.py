"""What every context's subscriptions share: check where to resume, then stream a topic from the hub."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from app.domain.errors import ValidationError
from app.live.notices import ChangeNotice
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
