"""Notification output types: one mail of the outbox."""

from __future__ import annotations

import datetime as dt
import enum

import strawberry

from app.queries.notifications import NotificationRow


@strawberry.enum
class NotificationStatus(enum.Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # not sent: the address was not verified, or the customer's hourly limit


@strawberry.enum
class NotificationKind(enum.Enum):
    ORDER_RECEIVED = "ORDER_RECEIVED"
    ORDER_COMPLETED = "ORDER_COMPLETED"
    ORDER_CANCELLED = "ORDER_CANCELLED"


@strawberry.type(description="A mail to a customer about their order, and how sending it went.")
class Notification:
    id: strawberry.ID
    order_id: strawberry.ID
    kind: NotificationKind
    recipient: str
    subject: str
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: NotificationRow) -> Notification:
        return cls(
            id=strawberry.ID(row.id),
            order_id=strawberry.ID(row.order_id),
            kind=NotificationKind(row.kind),
            recipient=row.recipient,
            subject=row.subject,
            status=NotificationStatus(row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
        )
