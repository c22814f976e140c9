"""The notification area of the schema: the mail outbox (admins only)."""

from app.schema.notifications.queries import NotificationsQuery

__all__ = ["NotificationsQuery"]
