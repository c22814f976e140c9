"""Consumer group `notifications`: turns order events into outbox rows, in the batch transaction.

OrderPlaced carries the buyer's address; the later events carry only ids, so the address is kept
per order in `notification.recipients`. The outbox's unique (order_id, kind) queues each mail once
however often an event is delivered. New rows schedule a `send-mail` run at once (committed with
them), so the first attempt does not wait for the periodic one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import asyncpg

from app.bus.checkpoints import OwnCheckpoint
from app.bus.protocol import type_names
from app.bus.scheduler import Scheduler
from app.domain.notification.mail import (
    Letter,
    Recipient,
    order_cancelled,
    order_completed,
    order_received,
    recipient_of,
)
from app.events.base import Event
from app.events.ordering import OrderCancelled, OrderCompleted, OrderPlaced
from app.eventstore import RecordedEvent
from app.ids import new_id
from app.live.notices import ChangeNotice
from app.notifications.sender import SEND_MAIL

log = logging.getLogger(__name__)

NAME = "notifications"

_REMEMBER = """
INSERT INTO notification.recipients (order_id, buyer_id, name, email) VALUES ($1::uuid, $2::uuid, $3, $4)
ON CONFLICT (order_id) DO NOTHING
"""
_RECIPIENT = "SELECT name, email FROM notification.recipients WHERE order_id = $1::uuid"
_QUEUE = """
INSERT INTO notification.outbox (id, order_id, kind, recipient, subject, body)
VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6)
ON CONFLICT (order_id, kind) DO NOTHING RETURNING id
"""


class NotificationOutbox(OwnCheckpoint):
    """Queues the order mails: received, completed, cancelled."""

    name = NAME
    handles = type_names(OrderPlaced, OrderCompleted, OrderCancelled)  # the events `_letter_for` writes for

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Queue the mail each order event calls for; wake the sender when any was new."""
        queued: list[str] = []
        for recorded in events:
            letter = await _letter_for(conn, recorded.event)
            if letter is not None and await _queue(conn, letter):
                queued.append(letter.order_id)
        if queued:
            # A key of its own, so it never waits for a send-mail run that holds the periodic row.
            await self._scheduler.schedule(conn, SEND_MAIL, f"queued:{new_id()}", dt.datetime.now(dt.UTC))
        return []


async def _letter_for(conn: asyncpg.Connection, event: Event) -> Letter | None:
    if isinstance(event, OrderPlaced):
        to = recipient_of(event)
        if to is None:
            log.info("notifications: order %s has no usable mail address; no mail", event.order_id)
            return None
        await conn.execute(_REMEMBER, event.order_id, event.buyer_id, to.name, to.email)
        return order_received(event, to)
    if isinstance(event, OrderCompleted | OrderCancelled):
        row = await conn.fetchrow(_RECIPIENT, event.order_id)
        if row is None:
            return None  # the buyer gave no address, or the order predates this consumer
        to = Recipient(name=row["name"], email=row["email"])
        if isinstance(event, OrderCompleted):
            return order_completed(event.order_id, to)
        return order_cancelled(event.order_id, event.reason, to)
    return None


async def _queue(conn: asyncpg.Connection, letter: Letter) -> bool:
    """Insert `letter` into the outbox; return False when it was queued before."""
    inserted = await conn.fetchval(
        _QUEUE, new_id(), letter.order_id, letter.kind.value, letter.recipient, letter.subject, letter.body
    )
    return inserted is not None
