"""The checkout saga's adapter: consumer group `checkout-saga` and the handler of its timeouts.

The decisions are pure (`app/domain/finance/checkout.py`); this module loads the saga's row in
`finance.checkouts` under a row lock, asks for a decision, and carries it out in the same transaction:
the consumer's batch transaction (which also holds the checkpoint) or the timeout's own. So the new
state, the CheckoutRequested event, the timeout and a compensating CancelOrder commit together or
not at all, and a redelivered event finds the state already moved on and does nothing.

Each request's timeout has its own key (`<order id>:<attempt>`), so a timeout that fires late for an
earlier request is told apart from the current one (the pure decision ignores it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.bus.checkpoints import OwnCheckpoint
from app.bus.protocol import type_names
from app.bus.scheduler import Scheduler
from app.commands.bus import CommandBus
from app.domain.commands import Command, Emits
from app.domain.errors import ConflictError, NotFoundError
from app.domain.finance.checkout import (
    Action,
    CancelOrder,
    CancelTimeout,
    Checkout,
    RequestCheckout,
    Stage,
    TimedOut,
    Trigger,
    react,
)
from app.domain.ordering import commands as ordering
from app.events.base import Metadata
from app.events.basket import BasketCheckedOut, BasketCheckoutFailed
from app.events.finance import CheckoutRequested
from app.events.ordering import OrderCancelled, OrderCompleted, OrderPlaced
from app.eventstore import EventStore, RecordedEvent
from app.ids import checkout_id_of
from app.live.notices import ChangeNotice
from app.settings import Settings

log = logging.getLogger(__name__)

NAME = "checkout-saga"
ACTOR = "system:checkout-saga"
TIMEOUT = "checkout-timeout"
STREAM_TYPE = "Checkout"
TRIGGERS = (OrderPlaced, BasketCheckedOut, BasketCheckoutFailed, OrderCompleted, OrderCancelled)

_COLUMNS = "order_id::text, basket_id::text, customer_id::text, stage, attempts, correlation_id"
_LOAD = f"SELECT {_COLUMNS} FROM finance.checkouts WHERE order_id = $1::uuid FOR UPDATE"
_INSERT = """
INSERT INTO finance.checkouts (order_id, checkout_id, basket_id, customer_id, stage, attempts, correlation_id)
VALUES ($1::uuid, $2::uuid, $3::uuid, $4::uuid, $5, $6, $7)
"""
_UPDATE = """
UPDATE finance.checkouts SET stage = $2, attempts = $3, updated_at = now() WHERE order_id = $1::uuid
"""


@dataclass(frozen=True, slots=True)
class Cause:
    """What the saga's commands and events record as their correlation and causation."""

    correlation_id: str
    causation_id: str | None

    def metadata(self) -> Metadata:
        return Metadata(actor=ACTOR, correlation_id=self.correlation_id, causation_id=self.causation_id)


class CheckoutSaga(OwnCheckpoint):
    """Consumer group `checkout-saga`, and the `checkout-timeout` handler of the scheduler."""

    name = NAME
    handles = type_names(*TRIGGERS)
    sends: tuple[type[Command], ...] = (ordering.CancelOrder,)
    emits: Emits = (CheckoutRequested,)  # appended by `_request` itself, not by a command

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        event_store: EventStore,
        commands: CommandBus,
        scheduler: Scheduler,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._store = event_store
        self._commands = commands
        self._scheduler = scheduler

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> list[ChangeNotice]:
        """Move each order's checkout on, inside the batch transaction."""
        for recorded in events:
            event = recorded.event
            if isinstance(event, TRIGGERS):
                correlation_id = recorded.metadata.get("correlation_id") or recorded.event_id
                cause = Cause(correlation_id, recorded.event_id)
                await self._react(conn, event.order_id, event, cause)
        return []

    async def on_timeout(self, payload: dict[str, Any]) -> None:
        """Handle a due `checkout-timeout`: re-send the request, or cancel the order after the last."""
        timeout = TimedOut(order_id=str(payload["order_id"]), attempt=int(payload["attempt"]))
        async with self._pool.acquire() as conn, conn.transaction():
            await self._react(conn, timeout.order_id, timeout, None)

    async def _react(
        self,
        conn: asyncpg.Connection,
        order_id: str,
        trigger: Trigger,
        cause: Cause | None,
    ) -> None:
        """Decide on `trigger` and carry it out; without a cause, the saga's own correlation is used."""
        row = await conn.fetchrow(_LOAD, order_id)
        state = None if row is None else _checkout(row)
        decision = react(state, trigger, max_attempts=self._settings.checkout_attempts)
        if decision.state is None or (decision.state == state and not decision.actions):
            if isinstance(trigger, BasketCheckedOut) and state is not None and state.stage is Stage.CANCELLED:
                # No command gives a basket its lines back: someone has to look at this order.
                log.warning("checkout saga: basket checked out for order %s, already cancelled", order_id)
            return
        if cause is None:
            cause = Cause(row["correlation_id"] if row is not None else order_id, None)
        if state is None:
            await _insert(conn, decision.state, cause.correlation_id)
        else:
            await conn.execute(_UPDATE, order_id, decision.state.stage.value, decision.state.attempts)
        for action in decision.actions:
            await self._perform(conn, decision.state, action, cause)

    async def _perform(self, conn: asyncpg.Connection, state: Checkout, action: Action, cause: Cause) -> None:
        if isinstance(action, RequestCheckout):
            await self._request(conn, state, action.attempt, cause)
        elif isinstance(action, CancelTimeout):
            await self._scheduler.cancel(conn, TIMEOUT, timeout_key(state.order_id, action.attempt))
        else:
            await self._cancel_order(conn, state, action, cause)

    async def _request(self, conn: asyncpg.Connection, state: Checkout, attempt: int, cause: Cause) -> None:
        checkout_id = checkout_id_of(state.order_id)
        request = CheckoutRequested(
            checkout_id=checkout_id,
            order_id=state.order_id,
            basket_id=state.basket_id,
            customer_id=state.customer_id,
            attempt=attempt,
        )
        # Request n is the stream's n-th event: a second request n fails on the stream version.
        await self._store.append(
            conn,
            stream_id=checkout_id,
            stream_type=STREAM_TYPE,
            expected_version=attempt - 1,
            events=[request],
            metadata=cause.metadata(),
        )
        due_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._settings.checkout_timeout)
        payload = {"order_id": state.order_id, "attempt": attempt}
        await self._scheduler.schedule(conn, TIMEOUT, timeout_key(state.order_id, attempt), due_at, payload)

    async def _cancel_order(
        self, conn: asyncpg.Connection, state: Checkout, action: CancelOrder, cause: Cause
    ) -> None:
        command = ordering.CancelOrder(order_id=state.order_id, requested_by=None, reason=action.reason)
        try:
            await self._commands.dispatch(
                command,
                actor=ACTOR,
                correlation_id=cause.correlation_id,
                causation_id=cause.causation_id,
                conn=conn,
            )
        except ConflictError as exc:
            # Completed or cancelled meanwhile: there is nothing left to compensate.
            log.info("checkout saga: order %s not cancelled: %s", state.order_id, exc.message)
        except NotFoundError as exc:
            log.warning("checkout saga: order %s not cancelled: %s", state.order_id, exc.message)


def timeout_key(order_id: str, attempt: int) -> str:
    """Return the scheduler key of request `attempt`'s timeout."""
    return f"{order_id}:{attempt}"


async def _insert(conn: asyncpg.Connection, state: Checkout, correlation_id: str) -> None:
    await conn.execute(
        _INSERT,
        state.order_id,
        checkout_id_of(state.order_id),
        state.basket_id,
        state.customer_id,
        state.stage.value,
        state.attempts,
        correlation_id,
    )


def _checkout(row: asyncpg.Record) -> Checkout:
    return Checkout(
        order_id=row["order_id"],
        basket_id=row["basket_id"],
        customer_id=row["customer_id"],
        stage=Stage(row["stage"]),
        attempts=row["attempts"],
    )
