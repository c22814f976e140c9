"""Consumer group `notifications`: turns order events into outbox rows, in the batch transaction.

OrderPlaced carries the buyer's address; the later events carry only ids, so the address is kept
per order in `notification.recipients`. The outbox's unique (order_id, kind) queues each mail once
however often an event is delivered. A mail is queued only to an address the identity provider
verified (or any address, with `trust_unverified`), and at most `max_per_hour` a customer; any
other is recorded SKIPPED with the reason, never sent. New rows schedule a `send-mail` run at once
(committed with them), so the first attempt does not wait for the periodic one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import asyncpg

from app.bus.checkpoints import OwnCheckpoint
from app.bus.protocol import type_names
from app.bus.scheduler import Scheduler
from app.domain.commands import Command, Emits
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
_RECIPIENT = "SELECT buyer_id::text, name, email FROM notification.recipients WHERE order_id = $1::uuid"
_QUEUE = """
INSERT INTO notification.outbox (id, order_id, kind, recipient, subject, body)
VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6)
ON CONFLICT (order_id, kind) DO NOTHING RETURNING id
"""
_SKIP = """
INSERT INTO notification.outbox
    (id, order_id, kind, recipient, subject, body, status, next_attempt_at, last_error)
VALUES ($1::uuid, $2::uuid, $3, $4, $5, '', 'SKIPPED', NULL, $6)
ON CONFLICT (order_id, kind) DO NOTHING
"""
# The buyer's mails of the last hour: queued ones, and ones already skipped for the limit.
_RECENT = """
SELECT count(*) FILTER (WHERE o.status <> 'SKIPPED'), count(*) FILTER (WHERE o.last_error = $2)
FROM notification.outbox AS o JOIN notification.recipients AS r USING (order_id)
WHERE r.buyer_id = $1::uuid AND o.created_at > now() - interval '1 hour'
"""
UNVERIFIED = "The buyer's address was not verified by the identity provider."
OVER_LIMIT = "The buyer's mail limit for this hour was reached."


class NotificationOutbox(OwnCheckpoint):
    """Queues the order mails: received, completed, cancelled."""

    name = NAME
    handles = type_names(OrderPlaced, OrderCompleted, OrderCancelled)  # the events `_letter_for` writes for
    sends: tuple[type[Command], ...] = ()
    emits: Emits = ()

    def __init__(
        self, scheduler: Scheduler, *, trust_unverified: bool = False, max_per_hour: int = 10
    ) -> None:
        self._scheduler = scheduler
        self._trust_unverified = trust_unverified
        self._max_per_hour = max_per_hour

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Queue the mail each order event calls for; wake the sender when any was new."""
        queued: list[str] = []
        for recorded in events:
            found = await _letter_for(conn, recorded.event)
            if found is None:
                continue
            letter, buyer_id, verified = found
            reason = await self._reason_to_skip(conn, letter, buyer_id, verified)
            if reason is not None:
                await _skip(conn, letter, reason)
            elif await _queue(conn, letter):
                queued.append(letter.order_id)
        if queued:
            # A key of its own, so it never waits for a send-mail run that holds the periodic row.
            await self._scheduler.schedule(conn, SEND_MAIL, f"queued:{new_id()}", dt.datetime.now(dt.UTC))
        return []

    async def _reason_to_skip(
        self, conn: asyncpg.Connection, letter: Letter, buyer_id: str, verified: bool
    ) -> str | None:
        """Return why `letter` must not be sent, or None when it may be queued."""
        if not (verified or self._trust_unverified):
            return UNVERIFIED
        recent, over = await conn.fetchrow(_RECENT, buyer_id, OVER_LIMIT)
        if recent < self._max_per_hour:
            return None
        if over == 0:  # once an hour per customer, not once a mail
            log.info("notifications: buyer %s reached %d mails this hour; skipping more", buyer_id, recent)
        return OVER_LIMIT


async def _letter_for(conn: asyncpg.Connection, event: Event) -> tuple[Letter, str, bool] | None:
    """Return the mail `event` calls for, its buyer, and whether the address is verified."""
    if isinstance(event, OrderPlaced):
        to = recipient_of(event)
        if to is None:
            log.info("notifications: order %s has no usable mail address; no mail", event.order_id)
            return None
        await conn.execute(_REMEMBER, event.order_id, event.buyer_id, to.name, to.email)
        return order_received(event, to), event.buyer_id, event.buyer_email_verified
    if isinstance(event, OrderCompleted | OrderCancelled):
        row = await conn.fetchrow(_RECIPIENT, event.order_id)
        if row is None:
            return None  # the buyer gave no address, or the order predates this consumer
        to = Recipient(name=row["name"], email=row["email"])
        # Only a verified (or trusted) address is remembered past the first mail: see _skip.
        if isinstance(event, OrderCompleted):
            return order_completed(event.order_id, to), row["buyer_id"], True
        return order_cancelled(event.order_id, event.reason, to), row["buyer_id"], True
    return None


async def _skip(conn: asyncpg.Connection, letter: Letter, reason: str) -> None:
    """Record `letter` as SKIPPED, without its body; forget an unverified address for later mails."""
    await conn.execute(
        _SKIP, new_id(), letter.order_id, letter.kind.value, letter.recipient, letter.subject, reason
    )
    if reason == UNVERIFIED:
        await conn.execute("DELETE FROM notification.recipients WHERE order_id = $1::uuid", letter.order_id)


async def _queue(conn: asyncpg.Connection, letter: Letter) -> bool:
    """Insert `letter` into the outbox; return False when it was queued before."""
    inserted = await conn.fetchval(
        _QUEUE, new_id(), letter.order_id, letter.kind.value, letter.recipient, letter.subject, letter.body
    )
    return inserted is not None
