"""What each order mail says: pure composition of subject and body from the order's events."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal

from app.events.ordering import OrderLine, OrderPlaced

SIGNATURE = "Thank you for shopping at Bookworm."
MAX_ADDRESS = 254  # RFC 5321's limit on a forward path
# One @, something on each side, a dot in the domain, no whitespace or control characters: anything
# stricter is the mail server's business, anything looser could smuggle in a header.
_ADDRESS = re.compile(r"[^@\s\x00-\x1f\x7f<>,;\"]+@[^@\s\x00-\x1f\x7f<>,;\"]+\.[^@\s\x00-\x1f\x7f<>,;\"]+")


class MailKind(enum.StrEnum):
    ORDER_RECEIVED = "ORDER_RECEIVED"
    ORDER_COMPLETED = "ORDER_COMPLETED"
    ORDER_CANCELLED = "ORDER_CANCELLED"


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """Whom mails about one order go to."""

    name: str
    email: str


@dataclass(frozen=True, kw_only=True)
class Letter:
    """One composed mail, ready for the outbox."""

    kind: MailKind
    order_id: str
    recipient: str
    subject: str
    body: str


def is_address(value: str) -> bool:
    """Tell whether `value` can be used as a recipient address."""
    return len(value) <= MAX_ADDRESS and _ADDRESS.fullmatch(value) is not None


def recipient_of(placed: OrderPlaced) -> Recipient | None:
    """Return whom to write about a placed order; None when the buyer gave no usable address."""
    email = (placed.buyer_email or "").strip()
    if not is_address(email):
        return None
    return Recipient(name=" ".join(placed.buyer_name.split()), email=email)


def order_received(placed: OrderPlaced, to: Recipient) -> Letter:
    """Confirm a placed order: its lines, total and delivery address."""
    lines = "\n".join(_line(line) for line in placed.lines)
    note = f"\nYour note: {placed.note}\n" if placed.note else ""
    body = (
        f"{_greeting(to)}\n\n"
        f"we have received your order {placed.order_id}:\n\n"
        f"{lines}\n\n"
        f"Total: {_money(placed.total)}\n\n"
        f"It will be delivered to:\n  {placed.street}\n  {placed.city}, {placed.province}\n"
        f"{note}\n{SIGNATURE}\n"
    )
    return _letter(MailKind.ORDER_RECEIVED, placed.order_id, to, "received", body)


def order_completed(order_id: str, to: Recipient) -> Letter:
    """Tell the buyer their order is completed."""
    body = f"{_greeting(to)}\n\nyour order {order_id} is completed.\n\n{SIGNATURE}\n"
    return _letter(MailKind.ORDER_COMPLETED, order_id, to, "completed", body)


def order_cancelled(order_id: str, reason: str | None, to: Recipient) -> Letter:
    """Tell the buyer their order was cancelled, and why when a reason was given."""
    why = f"\nReason: {reason}\n" if reason else ""
    body = (
        f"{_greeting(to)}\n\nyour order {order_id} was cancelled.\n{why}\n"
        f"Nothing will be charged or delivered for it.\n\n{SIGNATURE}\n"
    )
    return _letter(MailKind.ORDER_CANCELLED, order_id, to, "cancelled", body)


def reference(order_id: str) -> str:
    """Return the short form of an order id for subjects (its last, random, 8 hex digits)."""
    return order_id.replace("-", "")[-8:]


def _letter(kind: MailKind, order_id: str, to: Recipient, what: str, body: str) -> Letter:
    subject = f"Bookworm order {what} (#{reference(order_id)})"
    return Letter(kind=kind, order_id=order_id, recipient=to.email, subject=subject, body=body)


def _greeting(to: Recipient) -> str:
    return f"Hello {to.name}," if to.name else "Hello,"


def _line(line: OrderLine) -> str:
    total = line.unit_price * line.quantity
    return f"  {line.quantity} x {line.name} at {_money(line.unit_price)} = {_money(total)}"


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"
