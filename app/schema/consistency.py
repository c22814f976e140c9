"""Read your writes: wait (bounded) until the read model has passed a position."""

from __future__ import annotations

from app.domain.errors import UnavailableError
from app.schema.context import Info
from app.schema.positions import Position

CATALOG = "catalog"


async def caught_up(info: Info, position: Position, projection: str = CATALOG) -> None:
    """Return once `projection` has applied `position`; raise UnavailableError after the timeout."""
    container = info.context.container
    timeout = container.settings.read_your_writes_timeout
    if not await container.positions.wait(projection, position, timeout):
        raise UnavailableError(
            f"The {projection} read model has not reached position {position} within {timeout:g} s; "
            f"query again with header Bookworm-Position: {position}."
        )
