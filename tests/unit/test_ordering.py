"""Buyers and orders: given events, when a command, then events or an error."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from typing import Any

import pytest

from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.domain.ordering import buyer, order
from app.domain.ordering.basket_lines import BasketLine, fold_lines
from app.domain.ordering.commands import CancelOrder, CompleteOrder, PlaceOrder, UpdateBuyerAddress
from app.events import basket as bev
from app.events.base import Event
from app.events.ordering import (
    BuyerAddressUpdated,
    OrderCancelled,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
)
from app.ids import basket_id_of, new_id
from tests.validation import fields_of

BUYER, OTHER, ORDER, BOOK1, BOOK2 = (new_id() for _ in range(5))
BASKET = basket_id_of(BUYER)


@dataclass(frozen=True)
class Facts:
    name: str
    unit_price: Decimal
    available: bool = True


def given_buyer(*events: Event) -> buyer.State:
    return reduce(buyer.evolve, events, buyer.State())


def given_order(*events: Event) -> order.State:
    return reduce(order.evolve, events, order.State())


def address_command(**changes: Any) -> UpdateBuyerAddress:
    fields: dict[str, Any] = {
        "buyer_id": BUYER,
        "name": "Alice",
        "email": "alice@example.com",
        "street": "1 Main St",
        "city": "Springfield",
        "province": "ON",
    }
    return UpdateBuyerAddress(**(fields | changes))


def address_updated(**changes: Any) -> BuyerAddressUpdated:
    fields: dict[str, Any] = {
        "buyer_id": BUYER,
        "name": "Alice",
        "email": "alice@example.com",
        "street": "1 Main St",
        "city": "Springfield",
        "province": "ON",
    }
    return BuyerAddressUpdated(**(fields | changes))


def place_command(**changes: Any) -> PlaceOrder:
    fields: dict[str, Any] = {
        "order_id": ORDER,
        "buyer_id": BUYER,
        "buyer_name": "Alice",
        "buyer_email": "alice@example.com",
        "note": None,
    }
    return PlaceOrder(**(fields | changes))


LINES = (BasketLine(BOOK1, 2), BasketLine(BOOK2, 1))
BOOKS = {BOOK1: Facts("Dune", Decimal("9.99")), BOOK2: Facts("Emma", Decimal("12.5"))}


def placed(**changes: Any) -> OrderPlaced:
    fields: dict[str, Any] = {
        "order_id": ORDER,
        "buyer_id": BUYER,
        "buyer_name": "Alice",
        "buyer_email": "alice@example.com",
        "basket_id": BASKET,
        "street": "1 Main St",
        "city": "Springfield",
        "province": "ON",
        "note": None,
        "lines": (
            OrderLine(book_id=BOOK1, name="Dune", quantity=2, unit_price=Decimal("9.99")),
            OrderLine(book_id=BOOK2, name="Emma", quantity=1, unit_price=Decimal("12.50")),
        ),
        "total": Decimal("32.48"),
    }
    return OrderPlaced(**(fields | changes))


# ---- buyer


def test_a_first_address_creates_the_profile() -> None:
    assert buyer.decide(given_buyer(), address_command()) == [address_updated()]


def test_address_fields_are_trimmed() -> None:
    command = address_command(street="  1 Main St ", city=" Springfield", province="ON  ", name=" Alice ")
    assert buyer.decide(given_buyer(), command) == [address_updated()]


@pytest.mark.parametrize("field", ["street", "city", "province"])
@pytest.mark.parametrize("value", ["", "   "])
def test_each_address_field_is_required(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        buyer.decide(given_buyer(), address_command(**{field: value}))
    assert list(fields_of(raised.value)) == [field]
    assert "required" in fields_of(raised.value)[field]


@pytest.mark.parametrize("field", ["street", "city", "province"])
def test_address_fields_hold_at_most_100_characters(field: str) -> None:
    assert buyer.decide(given_buyer(), address_command(**{field: "x" * 100}))
    with pytest.raises(ValidationError) as raised:
        buyer.decide(given_buyer(), address_command(**{field: "x" * 101}))
    assert fields_of(raised.value) == {field: "Must be at most 100 characters."}


def test_every_bad_address_field_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as raised:
        buyer.decide(given_buyer(), address_command(street="", city="y" * 101, province=" "))
    assert set(fields_of(raised.value)) == {"street", "city", "province"}


def test_the_same_address_again_changes_nothing() -> None:
    assert buyer.decide(given_buyer(address_updated()), address_command()) == []


def test_a_new_address_or_a_new_name_is_an_update() -> None:
    state = given_buyer(address_updated())
    assert buyer.decide(state, address_command(city="Shelbyville")) == [address_updated(city="Shelbyville")]
    assert buyer.decide(state, address_command(name="Alice B.")) == [address_updated(name="Alice B.")]


def test_the_buyer_state_keeps_the_latest_address() -> None:
    state = given_buyer(address_updated(), address_updated(street="2 Elm St"))
    assert state.address == buyer.Address(street="2 Elm St", city="Springfield", province="ON")
    assert (state.id, state.version) == (BUYER, 2)


def test_a_buyer_without_an_address_cannot_receive_orders() -> None:
    with pytest.raises(ValidationError) as raised:
        buyer.require_address(given_buyer())
    assert fields_of(raised.value) == {"address": buyer.NO_ADDRESS}


# ---- the basket as ordering reads it


def added(book_id: str, quantity: int) -> bev.BasketItemAdded:
    return bev.BasketItemAdded(basket_id=BASKET, customer_id=BUYER, book_id=book_id, quantity=quantity)


def test_basket_lines_follow_adds_changes_and_removals_in_first_added_order() -> None:
    events: list[Event] = [
        added(BOOK1, 1),
        added(BOOK2, 1),
        added(BOOK1, 3),
        bev.BasketItemQuantityChanged(basket_id=BASKET, customer_id=BUYER, book_id=BOOK2, quantity=5),
    ]
    assert fold_lines(events) == (BasketLine(BOOK1, 3), BasketLine(BOOK2, 5))
    events.append(bev.BasketItemRemoved(basket_id=BASKET, customer_id=BUYER, book_id=BOOK1))
    assert fold_lines(events) == (BasketLine(BOOK2, 5),)


def test_a_quantity_of_zero_removes_the_line() -> None:
    changed = bev.BasketItemQuantityChanged(basket_id=BASKET, customer_id=BUYER, book_id=BOOK1, quantity=0)
    assert fold_lines([added(BOOK1, 2), changed]) == ()


def test_clearing_or_checking_out_empties_the_basket_and_a_failed_checkout_does_not() -> None:
    cleared = bev.BasketCleared(basket_id=BASKET, customer_id=BUYER)
    out = bev.BasketCheckedOut(basket_id=BASKET, customer_id=BUYER, order_id=ORDER)
    failed = bev.BasketCheckoutFailed(basket_id=BASKET, customer_id=BUYER, order_id=ORDER, reason="x")
    assert fold_lines([added(BOOK1, 2), cleared]) == ()
    assert fold_lines([added(BOOK1, 2), out]) == ()
    assert fold_lines([added(BOOK1, 2), out, added(BOOK2, 1)]) == (BasketLine(BOOK2, 1),)
    assert fold_lines([added(BOOK1, 2), failed]) == (BasketLine(BOOK1, 2),)


def test_a_checkout_naming_lines_takes_only_those_quantities() -> None:
    taken = (bev.CheckedOutLine(book_id=BOOK1, quantity=2),)
    out = bev.BasketCheckedOut(basket_id=BASKET, customer_id=BUYER, order_id=ORDER, lines=taken)
    assert fold_lines([added(BOOK1, 5), added(BOOK2, 1), out]) == (BasketLine(BOOK1, 3), BasketLine(BOOK2, 1))
    assert fold_lines([added(BOOK1, 2), added(BOOK2, 1), out]) == (BasketLine(BOOK2, 1),)


# ---- placing an order


def test_an_order_snapshots_names_and_unit_prices_and_sums_the_total() -> None:
    events = order.place(given_order(), place_command(), given_buyer(address_updated()), LINES, BOOKS)
    assert events == [placed()]


def test_the_note_is_trimmed_and_a_blank_note_is_none() -> None:
    shopper = given_buyer(address_updated())
    (event,) = order.place(given_order(), place_command(note="  ring twice "), shopper, LINES, BOOKS)
    assert isinstance(event, OrderPlaced) and event.note == "ring twice"
    (event,) = order.place(given_order(), place_command(note="   "), shopper, LINES, BOOKS)
    assert isinstance(event, OrderPlaced) and event.note is None


def test_a_note_over_500_characters_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        order.place(
            given_order(), place_command(note="n" * 501), given_buyer(address_updated()), LINES, BOOKS
        )
    assert set(fields_of(raised.value)) == {"note"}


def test_an_empty_basket_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        order.place(given_order(), place_command(), given_buyer(address_updated()), (), BOOKS)
    assert fields_of(raised.value) == {"basket": order.EMPTY_BASKET}


def test_a_buyer_without_an_address_cannot_order() -> None:
    with pytest.raises(ValidationError) as raised:
        order.place(given_order(), place_command(), given_buyer(), LINES, BOOKS)
    assert fields_of(raised.value) == {"address": buyer.NO_ADDRESS}


def test_no_address_and_an_empty_basket_are_reported_together() -> None:
    with pytest.raises(ValidationError) as raised:
        order.place(given_order(), place_command(), given_buyer(), (), BOOKS)
    assert set(fields_of(raised.value)) == {"address", "basket"}


def test_a_book_no_longer_sold_is_named_in_a_not_found() -> None:
    books = {**BOOKS, BOOK2: Facts("Emma", Decimal("12.50"), available=False)}
    with pytest.raises(NotFoundError) as raised:
        order.place(given_order(), place_command(), given_buyer(address_updated()), LINES, books)
    assert "'Emma'" in raised.value.message and BOOK2 in raised.value.message
    assert "Dune" not in raised.value.message


def test_a_book_never_known_is_named_by_id() -> None:
    with pytest.raises(NotFoundError) as raised:
        order.place(
            given_order(), place_command(), given_buyer(address_updated()), LINES, {BOOK1: BOOKS[BOOK1]}
        )
    assert f"book {BOOK2}" in raised.value.message


def test_an_existing_order_id_is_a_conflict() -> None:
    with pytest.raises(ConflictError):
        order.place(given_order(placed()), place_command(), given_buyer(address_updated()), LINES, BOOKS)


def test_a_malformed_order_id_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        order.place(
            given_order(), place_command(order_id="nope"), given_buyer(address_updated()), LINES, BOOKS
        )
    assert set(fields_of(raised.value)) == {"orderId"}


# ---- status changes


def test_a_placed_order_is_new() -> None:
    state = given_order(placed())
    assert (state.id, state.buyer_id, state.status, state.total, state.version) == (
        ORDER,
        BUYER,
        order.NEW,
        Decimal("32.48"),
        1,
    )


def test_a_new_order_can_be_completed() -> None:
    completed = OrderCompleted(order_id=ORDER, buyer_id=BUYER)
    assert order.decide(given_order(placed()), CompleteOrder(order_id=ORDER)) == [completed]
    assert given_order(placed(), completed).status == order.COMPLETED


@pytest.mark.parametrize("requested_by", [BUYER, None])
def test_its_buyer_or_an_admin_can_cancel_a_new_order(requested_by: str | None) -> None:
    command = CancelOrder(order_id=ORDER, requested_by=requested_by)
    cancelled = OrderCancelled(order_id=ORDER, buyer_id=BUYER, reason=None)
    assert order.decide(given_order(placed()), command) == [cancelled]
    assert given_order(placed(), cancelled).status == order.CANCELLED


def test_a_cancellation_keeps_a_trimmed_reason() -> None:
    command = CancelOrder(order_id=ORDER, requested_by=None, reason="  basket was empty ")
    (event,) = order.decide(given_order(placed()), command)
    assert isinstance(event, OrderCancelled) and event.reason == "basket was empty"


def test_another_customers_order_is_not_found_exactly_like_a_missing_one() -> None:
    with pytest.raises(NotFoundError) as theirs:
        order.decide(given_order(placed()), CancelOrder(order_id=ORDER, requested_by=OTHER))
    with pytest.raises(NotFoundError) as missing:
        order.decide(given_order(), CancelOrder(order_id=ORDER, requested_by=OTHER))
    assert theirs.value.message == missing.value.message


@pytest.mark.parametrize(
    "command", [CompleteOrder(order_id=ORDER), CancelOrder(order_id=ORDER, requested_by=None)]
)
def test_a_missing_order_cannot_change(command: CompleteOrder | CancelOrder) -> None:
    with pytest.raises(NotFoundError):
        order.decide(given_order(), command)


DONE = {
    "COMPLETED": OrderCompleted(order_id=ORDER, buyer_id=BUYER),
    "CANCELLED": OrderCancelled(order_id=ORDER, buyer_id=BUYER, reason=None),
}


@pytest.mark.parametrize("status", list(DONE))
@pytest.mark.parametrize(
    "command",
    [
        CompleteOrder(order_id=ORDER),
        CancelOrder(order_id=ORDER, requested_by=BUYER),
        CancelOrder(order_id=ORDER, requested_by=None),
    ],
)
def test_only_a_new_order_moves(status: str, command: CompleteOrder | CancelOrder) -> None:
    with pytest.raises(ConflictError) as raised:
        order.decide(given_order(placed(), DONE[status]), command)
    assert status in raised.value.message


def test_a_finished_order_of_someone_else_is_still_not_found() -> None:
    with pytest.raises(NotFoundError):
        order.decide(
            given_order(placed(), DONE["COMPLETED"]), CancelOrder(order_id=ORDER, requested_by=OTHER)
        )


def test_events_of_other_aggregates_do_not_make_an_order() -> None:
    assert given_order(added(BOOK1, 1)) == order.State()
