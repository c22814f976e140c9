"""The checkout saga's decisions: given its state and what happened, the next state and what to do.

OrderPlaced starts a checkout and asks the basket context to check the basket out. The basket's
answer moves it on (checked out: wait for the order's completion; failed: cancel the order). A
timeout re-sends the request until `max_attempts` requests went unanswered, then cancels the order.
Completing or cancelling the order ends the saga. Anything else, including every redelivered or
late event, changes nothing and asks for nothing: that is what makes each step idempotent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from app.events.base import Event
from app.events.basket import BasketCheckedOut, BasketCheckoutFailed
from app.events.ordering import OrderCancelled, OrderCompleted, OrderPlaced

TIMED_OUT = "Checkout timed out."


class Stage(enum.StrEnum):
    CHECKING_OUT = "CHECKING_OUT"
    AWAITING_COMPLETION = "AWAITING_COMPLETION"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


OPEN = frozenset({Stage.CHECKING_OUT, Stage.AWAITING_COMPLETION})


@dataclass(frozen=True, kw_only=True)
class Checkout:
    """One order's checkout: `attempts` is the number of checkout requests sent so far."""

    order_id: str
    basket_id: str
    customer_id: str
    stage: Stage
    attempts: int


@dataclass(frozen=True, kw_only=True)
class TimedOut:
    """The timeout of checkout request `attempt` fell due."""

    order_id: str
    attempt: int


# What the saga reacts to: the events it consumes, and its own timeouts.
Trigger = Event | TimedOut


@dataclass(frozen=True, kw_only=True)
class RequestCheckout:
    """Send checkout request `attempt` and start its timeout."""

    attempt: int


@dataclass(frozen=True, kw_only=True)
class CancelTimeout:
    """Drop the pending timeout of request `attempt`."""

    attempt: int


@dataclass(frozen=True, kw_only=True)
class CancelOrder:
    """Compensate: cancel the order, saying why."""

    reason: str


Action = RequestCheckout | CancelTimeout | CancelOrder


@dataclass(frozen=True, kw_only=True)
class Decision:
    state: Checkout | None
    actions: tuple[Action, ...] = ()


def react(state: Checkout | None, trigger: Trigger, *, max_attempts: int) -> Decision:
    """Return the saga's next state and the actions `trigger` calls for."""
    if isinstance(trigger, OrderPlaced):
        return _start(state, trigger)
    if state is None or state.stage not in OPEN:
        return Decision(state=state)  # not ours, or over: redelivered and late events change nothing
    if isinstance(trigger, TimedOut):
        return _timed_out(state, trigger, max_attempts)
    if isinstance(trigger, BasketCheckedOut) and state.stage is Stage.CHECKING_OUT:
        return _end(state, Stage.AWAITING_COMPLETION)
    if isinstance(trigger, BasketCheckoutFailed) and state.stage is Stage.CHECKING_OUT:
        return _end(state, Stage.CANCELLED, CancelOrder(reason=_failed(trigger.reason)))
    if isinstance(trigger, OrderCompleted):
        return _end(state, Stage.COMPLETED)
    if isinstance(trigger, OrderCancelled):
        return _end(state, Stage.CANCELLED)
    # The answer to a re-sent request after an earlier one succeeded: the basket is already ours.
    return Decision(state=state)


def _start(state: Checkout | None, placed: OrderPlaced) -> Decision:
    if state is not None:
        return Decision(state=state)
    started = Checkout(
        order_id=placed.order_id,
        basket_id=placed.basket_id,
        customer_id=placed.buyer_id,
        stage=Stage.CHECKING_OUT,
        attempts=1,
    )
    return Decision(state=started, actions=(RequestCheckout(attempt=1),))


def _timed_out(state: Checkout, timeout: TimedOut, max_attempts: int) -> Decision:
    if state.stage is not Stage.CHECKING_OUT or timeout.attempt != state.attempts:
        return Decision(state=state)  # answered meanwhile, or the timeout of an older request
    if state.attempts < max_attempts:
        attempt = state.attempts + 1
        return Decision(state=replace(state, attempts=attempt), actions=(RequestCheckout(attempt=attempt),))
    # The timeout that fell due is the one running now, so there is none left to cancel.
    return Decision(state=replace(state, stage=Stage.CANCELLED), actions=(CancelOrder(reason=TIMED_OUT),))


def _end(state: Checkout, stage: Stage, *actions: Action) -> Decision:
    """Move to `stage`; a saga that was still checking out drops its pending timeout."""
    cancel = (CancelTimeout(attempt=state.attempts),) if state.stage is Stage.CHECKING_OUT else ()
    return Decision(state=replace(state, stage=stage), actions=(*actions, *cancel))


def _failed(reason: str) -> str:
    return f"The basket could not be checked out: {reason}"
