"""Notification queries: the mail outbox, newest first, for admins."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.db import unavailable_when_down
from app.domain.errors import ValidationError
from app.domain.fields import check_id
from app.queries.paging import (
    Edge,
    Keyset,
    Page,
    Position,
    check_first,
    decode_cursor,
    make_page,
    timestamp_key,
)

STATUSES = ("PENDING", "SENT", "FAILED", "SKIPPED")
_ORDERING = "notification:newest"
_COLUMNS = """id::text, order_id::text, kind, recipient, subject, status, attempts, last_error,
    created_at, sent_at"""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationRow:
    id: str
    order_id: str
    kind: str
    recipient: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> NotificationRow:
        return cls(
            id=r["id"],
            order_id=r["order_id"],
            kind=r["kind"],
            recipient=r["recipient"],
            subject=r["subject"],
            status=r["status"],
            attempts=r["attempts"],
            last_error=r["last_error"],
            created_at=r["created_at"],
            sent_at=r["sent_at"],
        )


_LISTING = Keyset("notification.outbox", _COLUMNS, "created_at", "timestamptz", descending=True)


class NotificationQueries:
    """Read the outbox; never touches aggregates or events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @unavailable_when_down
    async def list_notifications(
        self,
        *,
        first: int = 20,
        after: str | None = None,
        status: str | None = None,
        order_id: str | None = None,
    ) -> Page[NotificationRow]:
        """Return one page of mails, newest first, optionally of one status or one order."""
        check_first(first)
        conditions, args = _filters(status, order_id)
        cursor = None if after is None else decode_cursor(after, _ORDERING, timestamp_key)
        count_sql = _LISTING.count_sql(conditions)
        sql, page_args = _LISTING.page_sql(conditions, args, cursor, first)
        async with self._pool.acquire() as conn:
            # One snapshot for both: the sender changes statuses all the time, and the count must agree.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                records = await conn.fetch(sql, *page_args)
                total = await conn.fetchval(count_sql, *args)
        edges = [Edge(_position(r), NotificationRow.from_record(r)) for r in records]
        return make_page(edges, first, after=after, total_count=total)


def _filters(status: str | None, order_id: str | None) -> tuple[list[str], list[Any]]:
    """Return the WHERE conditions and their arguments; refuse a bad status or order id."""
    args: list[Any] = []
    conditions = ["TRUE"]
    if status is not None:
        if status not in STATUSES:
            raise ValidationError.single("status", f"Must be one of {', '.join(STATUSES)}.")
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    if order_id is not None:
        args.append(check_id("orderId", order_id))
        conditions.append(f"order_id = ${len(args)}::uuid")
    return conditions, args


def _position(r: asyncpg.Record) -> Position:
    return _ORDERING, r["created_at"].isoformat(), r["id"]
