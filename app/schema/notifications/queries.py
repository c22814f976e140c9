"""Notification queries: the mail outbox, for admins."""

from __future__ import annotations

import strawberry

from app.domain.fields import check_id
from app.schema import described
from app.schema.access import require_admin
from app.schema.connections import Connection, page_connection, page_size
from app.schema.context import Info
from app.schema.notifications.types import Notification, NotificationStatus


@strawberry.type
class NotificationsQuery:
    @described.field("The mails sent (or still to send) to customers, newest first; admins only.")
    async def notifications(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: NotificationStatus | None = None,
        order_id: strawberry.ID | None = None,
    ) -> Connection[Notification]:
        require_admin(info)
        page = await info.context.container.notifications.list_notifications(
            first=page_size(first, 20),
            after=after,
            status=None if status is None else status.value,
            order_id=None if order_id is None else check_id("orderId", order_id),
        )
        return page_connection(page, Notification.from_row)
