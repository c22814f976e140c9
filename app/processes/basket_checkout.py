"""The basket's side of the checkout saga: each CheckoutRequested becomes a CheckoutBasket command.

The command runs in the consumer's batch transaction, so it commits with the checkpoint: a redelivered
request below the checkpoint is skipped, and one that slips past it (a crash between commit and XACK
cannot, but a retried dead letter can) meets the aggregate's rule that an order is answered once.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from app.bus.checkpoints import OwnCheckpoint
from app.bus.protocol import type_names
from app.commands.bus import CommandBus
from app.domain.basket.commands import CheckoutBasket
from app.domain.commands import Command, Emits
from app.events.finance import CheckoutRequested
from app.eventstore import RecordedEvent
from app.live.notices import ChangeNotice

NAME = "basket-checkout"
ACTOR = "system:basket-checkout"


class BasketCheckout(OwnCheckpoint):
    """Consumer group `basket-checkout`: checks baskets out for the checkout saga."""

    name = NAME
    handles = type_names(CheckoutRequested)
    sends: tuple[type[Command], ...] = (CheckoutBasket,)
    emits: Emits = ()

    def __init__(self, commands: CommandBus) -> None:
        self._commands = commands

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Dispatch CheckoutBasket for every checkout request, inside the batch transaction."""
        for recorded in events:
            request = recorded.event
            if isinstance(request, CheckoutRequested):
                await self._commands.dispatch(
                    CheckoutBasket(customer_id=request.customer_id, order_id=request.order_id),
                    actor=ACTOR,
                    correlation_id=recorded.metadata.get("correlation_id"),
                    causation_id=recorded.event_id,
                    conn=conn,
                )
        return []  # the basket projection announces what the command changed
