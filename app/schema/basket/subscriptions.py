"""Basket subscriptions: changes of the caller's own basket."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from app.live.notices import basket_topic
from app.schema import described
from app.schema.access import require_customer
from app.schema.basket.types import BasketChange
from app.schema.catalog.types import ChangeKind
from app.schema.context import Info
from app.schema.positions import Position
from app.schema.subscriptions import notices, resume_position


async def basket_changes(
    info: Info, customer_id: str, after: Position | None
) -> AsyncGenerator[BasketChange, None]:
    async for notice in notices(info, basket_topic(customer_id), after):
        yield BasketChange(
            kind=ChangeKind(notice.kind),
            position=str(notice.position),
            basket_id=strawberry.ID(notice.entity_id),
            customer_id=customer_id,
        )


@strawberry.type
class BasketSubscription:
    # A plain async resolver that returns the generator: refusals come before the stream starts.
    @described.subscription(
        "Changes of the caller's basket, including price changes of its books; `after` replays first."
    )
    async def basket_changed(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[BasketChange, None]:
        customer_id = require_customer(info).customer_id
        return basket_changes(info, customer_id, await resume_position(info, after))
