"""The ordering projection: buyer profiles and orders, each order announced to it and to its buyer.

Every write is guarded by the stream version (`version < $n`), so re-applying an event is a no-op and
announces nothing.
"""

from __future__ import annotations

import json

import asyncpg

from app.bus.protocol import type_names
from app.events import ordering as ev
from app.eventstore.types import RecordedEvent
from app.live.notices import ChangeNotice, buyer_orders_topic, order_topic
from app.projections import ordering_tables
from app.projections.base import Statement, announces, apply_keyed

CREATED, UPDATED = "CREATED", "UPDATED"
ORDER = "Order"

_UPSERT_BUYER = """
INSERT INTO read.{p}buyers (id, name, email, street, city, province, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, street = EXCLUDED.street,
    city = EXCLUDED.city, province = EXCLUDED.province, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at
WHERE read.{p}buyers.version < EXCLUDED.version
RETURNING id"""

_INSERT_ORDER = """
INSERT INTO read.{p}orders (id, buyer_id, buyer_name, buyer_email, street, city, province, status, note,
    lines, total, version, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'NEW', $8, $9::jsonb, $10, $11, $12, $12)
ON CONFLICT (id) DO NOTHING
RETURNING id"""

_SET_STATUS = """
UPDATE read.{p}orders SET status = $2, cancel_reason = $3, version = $4, updated_at = $5
WHERE id = $1 AND version < $4
RETURNING id"""


def lines_json(lines: tuple[ev.OrderLine, ...]) -> str:
    """Return an order's lines as the jsonb the read model keeps (prices as exact strings)."""
    return json.dumps(
        [
            {"book_id": x.book_id, "name": x.name, "quantity": x.quantity, "unit_price": str(x.unit_price)}
            for x in lines
        ]
    )


def _order_notices(r: RecordedEvent, kind: str, order_id: str, buyer_id: str) -> list[ChangeNotice]:
    return [
        ChangeNotice(position=r.position, topic=topic, kind=kind, entity=ORDER, entity_id=order_id)
        for topic in (order_topic(order_id), buyer_orders_topic(buyer_id))
    ]


def _statement(r: RecordedEvent, p: str) -> Statement | None:
    e = r.event
    if isinstance(e, ev.BuyerAddressUpdated):
        buyer = (e.buyer_id, e.name, e.email, e.street, e.city, e.province, r.stream_version, r.recorded_at)
        return Statement(_UPSERT_BUYER.format(p=p), buyer, f"buyer:{e.buyer_id}", keyed=True)
    if isinstance(e, ev.OrderPlaced):
        order = (e.order_id, e.buyer_id, e.buyer_name, e.buyer_email, e.street, e.city, e.province, e.note)
        more = (lines_json(e.lines), e.total, r.stream_version, r.recorded_at)
        return Statement(_INSERT_ORDER.format(p=p), (*order, *more), f"order:{e.order_id}", keyed=True)
    if isinstance(e, ev.OrderCompleted | ev.OrderCancelled):
        status, reason = ("COMPLETED", None) if isinstance(e, ev.OrderCompleted) else ("CANCELLED", e.reason)
        changed = (e.order_id, status, reason, r.stream_version, r.recorded_at)
        return Statement(_SET_STATUS.format(p=p), changed, f"order:{e.order_id}", keyed=True)
    return None


class OrderingProjection:
    """Buyer profiles and orders with their lines, for the customer's and the admin's lists."""

    name = "ordering"
    version = 1
    handles = type_names(ev.BuyerAddressUpdated, ev.OrderPlaced, ev.OrderCompleted, ev.OrderCancelled)
    # A buyer's profile has no subscription: read-your-writes waits on the checkpoint.
    topics = announces(
        dict.fromkeys(
            (ev.OrderPlaced, ev.OrderCompleted, ev.OrderCancelled), (order_topic, buyer_orders_topic)
        )
    )

    def ddl(self, prefix: str) -> list[str]:
        return ordering_tables.ddl(prefix)

    def deferred_ddl(self, prefix: str) -> list[str]:
        return []

    def view_ddl(self, prefix: str) -> list[str]:
        return ordering_tables.view_ddl(prefix)

    def drop_ddl(self, prefix: str) -> list[str]:
        return ordering_tables.drop_ddl(prefix)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str) -> list[ChangeNotice]:
        """Apply one event to `prefix`'s tables; events of other contexts change nothing."""
        return await apply_keyed(conn, self, event, prefix)

    def statement(self, event: RecordedEvent, prefix: str) -> Statement | None:
        return _statement(event, prefix)

    async def announce(
        self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str, row: asyncpg.Record | None
    ) -> list[ChangeNotice]:
        e = event.event
        if row is None:
            return []
        if isinstance(e, ev.OrderPlaced):
            return _order_notices(event, CREATED, e.order_id, e.buyer_id)
        if isinstance(e, ev.OrderCompleted | ev.OrderCancelled):
            return _order_notices(event, UPDATED, e.order_id, e.buyer_id)
        return []  # no subscription follows buyer profiles; read-your-writes waits on the checkpoint


ORDERING = OrderingProjection()
