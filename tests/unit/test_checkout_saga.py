"""The checkout saga's decisions: given its state, when an event or a timeout, then state and actions."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from functools import reduce

import pytest

from app.domain.finance.checkout import (
    TIMED_OUT,
    CancelOrder,
    CancelTimeout,
    Checkout,
    Decision,
    RequestCheckout,
    Stage,
    TimedOut,
    Trigger,
    react,
)
from app.events.basket import BasketCheckedOut, BasketCheckoutFailed, BasketCleared
from app.events.ordering import OrderCancelled, OrderCompleted, OrderLine, OrderPlaced
from app.ids import basket_id_of, new_id

ORDER = new_id()
BUYER = new_id()
BASKET = basket_id_of(BUYER)
MAX = 3

PLACED = OrderPlaced(
    order_id=ORDER,
    buyer_id=BUYER,
    buyer_name="Alice",
    buyer_email="alice@example.com",
    basket_id=BASKET,
    street="1 Main St",
    city="Springfield",
    province="Ontario",
    note=None,
    lines=(OrderLine(book_id=new_id(), name="Dune", quantity=1, unit_price=Decimal("9.99")),),
    total=Decimal("9.99"),
)
CHECKED_OUT = BasketCheckedOut(basket_id=BASKET, customer_id=BUYER, order_id=ORDER)
FAILED = BasketCheckoutFailed(
    basket_id=BASKET, customer_id=BUYER, order_id=ORDER, reason="The basket is empty."
)
COMPLETED = OrderCompleted(order_id=ORDER, buyer_id=BUYER)
CANCELLED = OrderCancelled(order_id=ORDER, buyer_id=BUYER, reason=None)


def checkout(stage: Stage = Stage.CHECKING_OUT, attempts: int = 1) -> Checkout:
    return Checkout(order_id=ORDER, basket_id=BASKET, customer_id=BUYER, stage=stage, attempts=attempts)


def given(*triggers: Trigger) -> Checkout | None:
    """Fold triggers through the saga, as the adapter does with the state it stores."""
    start: Checkout | None = None
    return reduce(lambda state, trigger: when(state, trigger).state, triggers, start)


def when(state: Checkout | None, trigger: Trigger) -> Decision:
    return react(state, trigger, max_attempts=MAX)


def unchanged(state: Checkout | None) -> Decision:
    return Decision(state=state)


def test_order_placed_starts_the_checkout_with_the_first_request() -> None:
    decision = when(None, PLACED)
    assert decision == Decision(state=checkout(), actions=(RequestCheckout(attempt=1),))


def test_the_checkout_keeps_the_order_basket_and_buyer() -> None:
    state = given(PLACED)
    assert state is not None
    assert (state.order_id, state.basket_id, state.customer_id) == (ORDER, BASKET, BUYER)


def test_basket_checked_out_awaits_completion_and_drops_the_timeout() -> None:
    decision = when(given(PLACED), CHECKED_OUT)
    assert decision == Decision(
        state=checkout(Stage.AWAITING_COMPLETION), actions=(CancelTimeout(attempt=1),)
    )


def test_basket_checkout_failed_cancels_the_order_and_drops_the_timeout() -> None:
    decision = when(given(PLACED), FAILED)
    assert decision.state == checkout(Stage.CANCELLED)
    assert decision.actions == (
        CancelOrder(reason="The basket could not be checked out: The basket is empty."),
        CancelTimeout(attempt=1),
    )


def test_the_dropped_timeout_is_the_latest_requests() -> None:
    decision = when(checkout(attempts=2), CHECKED_OUT)
    assert decision.actions == (CancelTimeout(attempt=2),)


def test_completion_after_checkout_ends_the_saga_with_nothing_to_do() -> None:
    decision = when(given(PLACED, CHECKED_OUT), COMPLETED)
    assert decision == Decision(state=checkout(Stage.COMPLETED, 1))


def test_cancellation_after_checkout_ends_the_saga_with_nothing_to_do() -> None:
    decision = when(given(PLACED, CHECKED_OUT), CANCELLED)
    assert decision == Decision(state=checkout(Stage.CANCELLED, 1))


@pytest.mark.parametrize(
    ("ended_by", "stage"),
    [(COMPLETED, Stage.COMPLETED), (CANCELLED, Stage.CANCELLED)],
    ids=["completed", "cancelled"],
)
def test_an_order_ended_while_checking_out_drops_the_timeout(ended_by: Trigger, stage: Stage) -> None:
    decision = when(given(PLACED), ended_by)
    assert decision == Decision(state=checkout(stage), actions=(CancelTimeout(attempt=1),))


def test_a_timeout_resends_the_request() -> None:
    decision = when(given(PLACED), TimedOut(order_id=ORDER, attempt=1))
    assert decision == Decision(state=checkout(attempts=2), actions=(RequestCheckout(attempt=2),))


def test_timeouts_resend_up_to_the_limit_then_cancel_the_order() -> None:
    state = given(PLACED, TimedOut(order_id=ORDER, attempt=1), TimedOut(order_id=ORDER, attempt=2))
    assert state == checkout(attempts=3)
    decision = when(state, TimedOut(order_id=ORDER, attempt=3))
    assert decision == Decision(
        state=checkout(Stage.CANCELLED, attempts=3), actions=(CancelOrder(reason=TIMED_OUT),)
    )


def test_the_limit_is_a_setting() -> None:
    decision = react(checkout(), TimedOut(order_id=ORDER, attempt=1), max_attempts=1)
    assert decision.actions == (CancelOrder(reason=TIMED_OUT),)


def test_an_answer_to_a_resent_request_still_counts() -> None:
    decision = when(checkout(attempts=3), CHECKED_OUT)
    assert decision == Decision(
        state=checkout(Stage.AWAITING_COMPLETION, 3), actions=(CancelTimeout(attempt=3),)
    )


# ---- redelivered, late and out-of-order events change nothing and ask for nothing ----


def test_a_redelivered_order_placed_sends_no_second_request() -> None:
    for state in (
        checkout(),
        checkout(attempts=2),
        checkout(Stage.AWAITING_COMPLETION),
        checkout(Stage.CANCELLED),
    ):
        assert when(state, PLACED) == unchanged(state)


@pytest.mark.parametrize(
    "trigger", [CHECKED_OUT, FAILED, COMPLETED, CANCELLED], ids=lambda t: type(t).__name__
)
def test_events_of_an_order_without_a_checkout_are_ignored(trigger: Trigger) -> None:
    assert when(None, trigger) == unchanged(None)


def test_a_timeout_of_an_unknown_order_is_ignored() -> None:
    assert when(None, TimedOut(order_id=ORDER, attempt=1)) == unchanged(None)


def test_a_redelivered_basket_checked_out_changes_nothing() -> None:
    state = given(PLACED, CHECKED_OUT)
    assert when(state, CHECKED_OUT) == unchanged(state)


def test_a_failure_answering_a_resent_request_after_success_is_ignored() -> None:
    # Request 1 checked the basket out; request 2 then finds it empty. The order stands.
    state = given(PLACED, TimedOut(order_id=ORDER, attempt=1), CHECKED_OUT)
    assert when(state, FAILED) == unchanged(state)


def test_a_redelivered_failure_does_not_cancel_twice() -> None:
    state = given(PLACED, FAILED)
    assert when(state, FAILED) == unchanged(state)


@pytest.mark.parametrize("stage", [Stage.COMPLETED, Stage.CANCELLED])
@pytest.mark.parametrize(
    "trigger", [CHECKED_OUT, FAILED, COMPLETED, CANCELLED], ids=lambda t: type(t).__name__
)
def test_an_ended_saga_ignores_every_event(stage: Stage, trigger: Trigger) -> None:
    state = checkout(stage, 2)
    assert when(state, trigger) == unchanged(state)


def test_a_late_basket_answer_after_the_timeout_cancelled_is_ignored() -> None:
    state = given(PLACED, *(TimedOut(order_id=ORDER, attempt=n) for n in (1, 2, 3)))
    assert state == checkout(Stage.CANCELLED, 3)
    assert when(state, CHECKED_OUT) == unchanged(state)


@pytest.mark.parametrize("stage", list(Stage))
def test_a_stale_timeout_is_ignored(stage: Stage) -> None:
    # The timeout of request 1 fires again (a retried handler) after request 2 was sent.
    state = checkout(stage, 2)
    assert when(state, TimedOut(order_id=ORDER, attempt=1)) == unchanged(state)


@pytest.mark.parametrize("stage", [Stage.AWAITING_COMPLETION, Stage.COMPLETED, Stage.CANCELLED])
def test_a_timeout_after_the_answer_is_ignored(stage: Stage) -> None:
    state = checkout(stage, 1)
    assert when(state, TimedOut(order_id=ORDER, attempt=1)) == unchanged(state)


def test_a_timeout_from_the_future_is_ignored() -> None:
    state = checkout(attempts=1)
    assert when(state, TimedOut(order_id=ORDER, attempt=2)) == unchanged(state)


def test_other_events_are_ignored() -> None:
    state = checkout()
    assert when(state, BasketCleared(basket_id=BASKET, customer_id=BUYER)) == unchanged(state)


def test_replaying_a_whole_history_twice_ends_where_once_does() -> None:
    history: list[Trigger] = [PLACED, TimedOut(order_id=ORDER, attempt=1), CHECKED_OUT, COMPLETED]
    once = given(*history)
    twice = given(*history, *history)
    assert once == twice == replace(checkout(Stage.COMPLETED), attempts=2)
