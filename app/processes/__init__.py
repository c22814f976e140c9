"""Process managers: consumers that react to events with commands or side effects, never a read model.

Each is a consumer group with its own checkpoint, and does its work inside the batch transaction:

- `basket_checkout`: CheckoutRequested -> CheckoutBasket (the basket's side of checkout).
- `checkout_saga`: the checkout saga's state per order, its steps and its timeout.
- `feedback_check`: feedback on a book that does not exist is removed again.
- `notification_outbox`: order events -> mails queued in the outbox (sent by `app.notifications`).
"""

from __future__ import annotations

from typing import Protocol

from app.domain.commands import Command, Emits
from app.processes.basket_checkout import BasketCheckout
from app.processes.checkout_saga import CheckoutSaga
from app.processes.feedback_check import FeedbackCheck
from app.processes.notification_outbox import NotificationOutbox


class ProcessManager(Protocol):
    """What a process manager's class declares: its consumer group, the events it handles, what it causes.

    It answers the events it `handles` with the commands it `sends`, and appends the events it `emits`
    itself (without a command).
    """

    name: str
    handles: frozenset[str]
    sends: tuple[type[Command], ...]
    emits: Emits


# Every process manager of this version (`app.bootstrap.build_processes` builds one of each): the event
# catalog (docs/events.md) lists what each consumes, sends and appends.
PROCESS_MANAGERS: tuple[type[ProcessManager], ...] = (
    BasketCheckout,
    FeedbackCheck,
    CheckoutSaga,
    NotificationOutbox,
)
