"""Baskets: given events, when a command, then events or an error."""

from __future__ import annotations

import json
from functools import reduce
from typing import Any

import pytest

from app.domain.basket import basket
from app.domain.basket.commands import (
    AddBasketItem,
    CheckoutBasket,
    ClearBasket,
    RemoveBasketItem,
    UpdateBasketItem,
)
from app.domain.errors import NotFoundError, ValidationError
from app.events.base import Event
from app.events.basket import (
    BasketCheckedOut,
    BasketCheckoutFailed,
    BasketCleared,
    BasketItemAdded,
    BasketItemQuantityChanged,
    BasketItemRemoved,
    CheckedOutLine,
)
from app.events.registry import REGISTRY
from app.ids import basket_id_of, new_id
from tests.validation import fields_of

CUSTOMER = new_id()
BASKET = basket_id_of(CUSTOMER)
BOOK, OTHER, ORDER = new_id(), new_id(), new_id()
IDS = {"basket_id": BASKET, "customer_id": CUSTOMER}


def given(*events: Event) -> basket.State:
    return reduce(basket.evolve, events, basket.State())


def added(book_id: str = BOOK, quantity: int = 1) -> BasketItemAdded:
    return BasketItemAdded(**IDS, book_id=book_id, quantity=quantity)


def add(book_id: str = BOOK, quantity: Any = 1) -> AddBasketItem:
    return AddBasketItem(customer_id=CUSTOMER, book_id=book_id, quantity=quantity)


def update(book_id: str = BOOK, quantity: Any = 1) -> UpdateBasketItem:
    return UpdateBasketItem(customer_id=CUSTOMER, book_id=book_id, quantity=quantity)


def checkout(order_id: str = ORDER) -> CheckoutBasket:
    return CheckoutBasket(customer_id=CUSTOMER, order_id=order_id)


def invalid(state: basket.State, command: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        basket.decide(state, command)
    return fields_of(caught.value)


# ---- add


def test_add_to_an_empty_basket_names_the_basket_of_the_customer() -> None:
    assert basket.decide(given(), add(quantity=3)) == [added(quantity=3)]


def test_add_to_an_existing_line_records_the_sum() -> None:
    assert basket.decide(given(added(quantity=2)), add(quantity=5)) == [added(quantity=7)]


def test_add_may_fill_a_line_up_to_99() -> None:
    assert basket.decide(given(added(quantity=98)), add(quantity=1)) == [added(quantity=99)]


def test_add_past_99_in_one_line_is_refused_on_quantity() -> None:
    fields = invalid(given(added(quantity=90)), add(quantity=10))
    assert list(fields) == ["quantity"] and "already holds 90" in fields["quantity"]


@pytest.mark.parametrize("quantity", [0, -1, 100, 10**9])
def test_add_refuses_a_quantity_outside_1_to_99(quantity: int) -> None:
    assert list(invalid(given(), add(quantity=quantity))) == ["quantity"]


@pytest.mark.parametrize("quantity", [True, 1.5, "2", None])
def test_add_refuses_a_quantity_that_is_not_a_whole_number(quantity: Any) -> None:
    assert invalid(given(), add(quantity=quantity)) == {"quantity": "Must be a whole number."}


def test_add_reports_a_malformed_book_id_and_a_bad_quantity_together() -> None:
    assert set(invalid(given(), add(book_id="not-an-id", quantity=0))) == {"bookId", "quantity"}


def test_lines_keep_the_order_they_were_first_added_in() -> None:
    state = given(added(OTHER), added(BOOK), added(OTHER, 4))
    assert list(state.lines.items()) == [(OTHER, 4), (BOOK, 1)]


# ---- update


def test_update_sets_the_quantity() -> None:
    [event] = basket.decide(given(added(quantity=2)), update(quantity=99))
    assert event == BasketItemQuantityChanged(**IDS, book_id=BOOK, quantity=99)
    assert given(added(quantity=2), event).lines == {BOOK: 99}


def test_update_to_the_same_quantity_changes_nothing() -> None:
    assert basket.decide(given(added(quantity=2)), update(quantity=2)) == []


@pytest.mark.parametrize("quantity", [0, -1, 100])
def test_update_refuses_a_quantity_outside_1_to_99(quantity: int) -> None:
    assert list(invalid(given(added()), update(quantity=quantity))) == ["quantity"]


def test_update_of_a_book_not_in_the_basket_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="bookId"):
        basket.decide(given(added(OTHER)), update(BOOK, 2))


def test_update_checks_the_quantity_before_the_line() -> None:
    assert list(invalid(given(), update(quantity=0))) == ["quantity"]


# ---- remove


def test_remove_drops_the_line() -> None:
    [event] = basket.decide(
        given(added(), added(OTHER)), RemoveBasketItem(customer_id=CUSTOMER, book_id=BOOK)
    )
    assert event == BasketItemRemoved(**IDS, book_id=BOOK)
    assert given(added(), added(OTHER), event).lines == {OTHER: 1}


def test_remove_of_a_book_not_in_the_basket_is_not_found() -> None:
    for state in (given(), given(added(BOOK), BasketItemRemoved(**IDS, book_id=BOOK))):
        with pytest.raises(NotFoundError):
            basket.decide(state, RemoveBasketItem(customer_id=CUSTOMER, book_id=BOOK))


# ---- clear


def test_clear_empties_the_basket() -> None:
    [event] = basket.decide(given(added(), added(OTHER)), ClearBasket(customer_id=CUSTOMER))
    assert event == BasketCleared(**IDS)
    assert given(added(), added(OTHER), event).lines == {}


def test_clearing_an_empty_basket_changes_nothing() -> None:
    assert basket.decide(given(), ClearBasket(customer_id=CUSTOMER)) == []
    assert basket.decide(given(added(), BasketCleared(**IDS)), ClearBasket(customer_id=CUSTOMER)) == []


# ---- checkout


def test_checkout_hands_the_basket_over_and_empties_it() -> None:
    [event] = basket.decide(given(added(quantity=2)), checkout())
    assert event == BasketCheckedOut(**IDS, order_id=ORDER, lines=(CheckedOutLine(book_id=BOOK, quantity=2),))
    assert event.left == ()
    after = given(added(quantity=2), event)
    assert after.lines == {} and after.handled_orders == {ORDER}


def test_checkout_of_an_empty_basket_fails_with_a_reason() -> None:
    [event] = basket.decide(given(), checkout())
    assert event == BasketCheckoutFailed(**IDS, order_id=ORDER, reason="The basket is empty.")
    assert given(event).handled_orders == {ORDER}


@pytest.mark.parametrize(
    "answer",
    [BasketCheckedOut(**IDS, order_id=ORDER), BasketCheckoutFailed(**IDS, order_id=ORDER, reason="x")],
)
def test_checkout_for_an_order_already_answered_changes_nothing(answer: Event) -> None:
    # Even when the basket was filled again since: the order already has its answer.
    assert basket.decide(given(added(), answer, added(OTHER)), checkout()) == []


def test_checkout_for_another_order_uses_the_refilled_basket() -> None:
    state = given(added(), BasketCheckedOut(**IDS, order_id=ORDER), added(OTHER, 3))
    assert state.lines == {OTHER: 3}
    later = new_id()
    taken = (CheckedOutLine(book_id=OTHER, quantity=3),)
    assert basket.decide(state, checkout(later)) == [BasketCheckedOut(**IDS, order_id=later, lines=taken)]


def test_checkout_takes_only_the_ordered_lines_and_quantities() -> None:
    state = given(added(quantity=2), added(quantity=5), added(OTHER, 1))  # the order had 2 of BOOK
    [event] = basket.check_out(state, checkout(), (CheckedOutLine(book_id=BOOK, quantity=2),))
    left = (CheckedOutLine(book_id=BOOK, quantity=3), CheckedOutLine(book_id=OTHER, quantity=1))
    taken = (CheckedOutLine(book_id=BOOK, quantity=2),)
    assert event == BasketCheckedOut(**IDS, order_id=ORDER, lines=taken, left=left)
    assert given(added(quantity=5), added(OTHER, 1), event).lines == {BOOK: 3, OTHER: 1}


def test_checkout_takes_no_more_than_the_basket_still_holds() -> None:
    ordered = (CheckedOutLine(book_id=BOOK, quantity=4), CheckedOutLine(book_id=OTHER, quantity=1))
    [event] = basket.check_out(given(added(quantity=1)), checkout(), ordered)
    assert event == BasketCheckedOut(**IDS, order_id=ORDER, lines=(CheckedOutLine(book_id=BOOK, quantity=1),))
    [failed] = basket.check_out(given(added(new_id())), checkout(), ordered)
    assert failed == BasketCheckoutFailed(**IDS, order_id=ORDER, reason=basket.GONE)


def test_a_v1_checkout_without_lines_still_empties_the_basket() -> None:
    assert given(added(), added(OTHER, 2), BasketCheckedOut(**IDS, order_id=ORDER)).lines == {}


def test_require_book_refuses_an_unavailable_book_on_book_id() -> None:
    basket.require_book(BOOK, True)
    with pytest.raises(NotFoundError, match="bookId"):
        basket.require_book(BOOK, False)


def test_events_of_other_kinds_leave_the_state_alone() -> None:
    state = given(added())
    assert basket.evolve(state, Event()) == state


def test_a_stored_v1_checkout_reads_as_one_naming_no_lines_and_v2_round_trips() -> None:
    v1 = {**IDS, "order_id": ORDER}
    assert REGISTRY.decode("BasketCheckedOut", 1, dict(v1)) == BasketCheckedOut(**IDS, order_id=ORDER)
    event = BasketCheckedOut(**IDS, order_id=ORDER, lines=(CheckedOutLine(book_id=BOOK, quantity=2),))
    name, version, data = REGISTRY.encode(event)
    assert (name, version) == ("BasketCheckedOut", 2)
    assert REGISTRY.decode(name, version, json.loads(json.dumps(data))) == event
