"""Ordering subscriptions: one order (its buyer or an admin), or all of the caller's orders."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.domain.errors import NotFoundError
from app.domain.fields import check_id
from app.live.notices import buyer_orders_topic, order_topic
from app.schema import described
from app.schema.access import require_customer
from app.schema.catalog.types import ChangeKind
from app.schema.consistency import caught_up
from app.schema.context import Info
from app.schema.ordering.payloads import ORDERING
from app.schema.ordering.types import OrderChange, visible_scope
from app.schema.positions import Position
from app.schema.subscriptions import notices, resume_position


async def order_changes(
    info: Info, topic: str, after: Position | None, scope: str | None
) -> AsyncGenerator[OrderChange, None]:
    async for notice in notices(info, topic, after):
        yield OrderChange(
            kind=ChangeKind(notice.kind),
            position=str(notice.position),
            order_id=strawberry.ID(notice.entity_id),
            scope=scope,
        )


async def require_visible_order(info: Info, order_id: str, after: Position | None, scope: str | None) -> None:
    """Refuse, before the stream starts, an order the caller may not see: NotFound, like a missing one."""
    queries = info.context.container.ordering
    found = await queries.order(order_id, buyer_id=scope)
    if found is None and after is not None:
        # A client that just placed the order resumes from its position: let the read model get there.
        await caught_up(info, after, projection=ORDERING)
        found = await queries.order(order_id, buyer_id=scope)
    if found is None:
        raise NotFoundError(f"No order with id {order_id}.")


@strawberry.type
class OrderingSubscription:
    # Plain async resolvers that return the generator: refusals come before the stream starts.
    @described.subscription(
        "Changes of one order (its buyer's or, for an admin, any); `after` replays first."
    )
    async def order_changed(
        self, info: Info, id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[OrderChange, None]:
        scope = visible_scope(require_customer(info))
        order_id = check_id("id", id)
        position = await resume_position(info, after)
        await require_visible_order(info, order_id, position, scope)
        return order_changes(info, order_topic(order_id), position, scope)

    @described.subscription("Changes of the caller's orders; `after` replays what was missed first.")
    async def my_orders_changed(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[OrderChange, None]:
        principal = require_customer(info)
        position = await resume_position(info, after)
        topic = buyer_orders_topic(principal.customer_id)
        return order_changes(info, topic, position, principal.customer_id)
