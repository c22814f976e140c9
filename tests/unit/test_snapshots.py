"""Snapshot serialization of the growing folds: what is written reads back equal, and nothing else reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.domain.basket import basket
from app.domain.basket.commands import AddBasketItem, CheckoutBasket, RemoveBasketItem
from app.domain.ordering import basket_lines, buyer
from app.domain.ordering.commands import UpdateBuyerAddress
from app.events.base import Event
from app.events.basket import BasketCheckedOut, BasketItemAdded, BasketItemRemoved, CheckedOutLine
from app.ids import basket_id_of, new_id

CUSTOMER = new_id()
IDS = {"basket_id": basket_id_of(CUSTOMER), "customer_id": CUSTOMER}
BOOKS = [new_id() for _ in range(3)]


def through_json(data: Any) -> Any:
    """What a jsonb column gives back."""
    return json.loads(json.dumps(data))


def basket_history() -> list[Event]:
    """A basket used for a while: lines added, raised, removed, re-added, and checked out twice."""
    state, events = basket.State(), []
    commands: list[Any] = [
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[0], quantity=2),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[1], quantity=1),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[2], quantity=4),
        RemoveBasketItem(customer_id=CUSTOMER, book_id=BOOKS[1]),
        CheckoutBasket(customer_id=CUSTOMER, order_id=new_id()),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[1], quantity=3),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[0], quantity=5),
        CheckoutBasket(customer_id=CUSTOMER, order_id=new_id()),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[2], quantity=1),
        AddBasketItem(customer_id=CUSTOMER, book_id=BOOKS[1], quantity=2),
    ]
    for command in commands:
        for event in basket.decide(state, command):
            state = basket.evolve(state, event)
            events.append(event)
    return events


def test_a_basket_reads_back_equal_at_every_version_in_line_order() -> None:
    state = basket.State()
    for event in basket_history():
        state = basket.evolve(state, event)
        restored = basket.from_snapshot(through_json(basket.snapshot(state)))
        assert restored == state
        assert list(restored.lines) == list(state.lines)  # the order books were first added
    assert len(state.handled_orders) == 2 and list(state.lines) == [BOOKS[2], BOOKS[1]]


def test_a_buyer_reads_back_equal_with_and_without_an_address() -> None:
    assert buyer.from_snapshot(through_json(buyer.snapshot(buyer.State()))) == buyer.State()
    state = buyer.State()
    for city in ("Lyon", "Nantes"):
        command = UpdateBuyerAddress(
            buyer_id=CUSTOMER, name="Ann", email=None, street="1 Rue Haute", city=city, province="RA"
        )
        for event in buyer.decide(state, command):
            state = buyer.evolve(state, event)
    assert state.version == 2 and state.address is not None
    assert buyer.from_snapshot(through_json(buyer.snapshot(state))) == state


def test_ordering_basket_lines_read_back_equal_and_fold_like_fold_lines() -> None:
    events = basket_history()
    lines: basket_lines.Lines = ()
    for number, event in enumerate(events, 1):
        lines = basket_lines.evolve(lines, event)
        assert lines == basket_lines.fold_lines(events[:number])
        assert basket_lines.from_snapshot(through_json(basket_lines.snapshot(lines))) == lines


def test_a_v1_checkout_that_names_no_lines_empties_ordering_lines() -> None:
    added = BasketItemAdded(**IDS, book_id=BOOKS[0], quantity=2)
    everything = BasketCheckedOut(**IDS, order_id=new_id(), lines=(), left=())
    part = BasketCheckedOut(
        **IDS, order_id=new_id(), lines=(CheckedOutLine(book_id=BOOKS[0], quantity=1),), left=()
    )
    assert basket_lines.fold_lines([added, everything]) == ()
    assert basket_lines.fold_lines([added, part]) == (basket_lines.BasketLine(BOOKS[0], 1),)
    assert basket_lines.evolve((), BasketItemRemoved(**IDS, book_id=BOOKS[0])) == ()


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"lines": []},
        {"lines": [], "handled_orders": [], "extra": 1},
        {"lines": [["a", 0]], "handled_orders": []},
        {"lines": [["a", 100]], "handled_orders": []},
        {"lines": [["a", True]], "handled_orders": []},
        {"lines": [["a", 1], ["a", 2]], "handled_orders": []},
        {"lines": [["a", 1, 2]], "handled_orders": []},
        {"lines": {"a": 1}, "handled_orders": []},
        {"lines": [], "handled_orders": "o"},
        {"lines": [], "handled_orders": [1]},
    ],
)
def test_a_basket_of_any_other_shape_does_not_read(data: Any) -> None:
    with pytest.raises(ValueError):
        basket.from_snapshot(data)


@pytest.mark.parametrize(
    "data",
    [
        {"id": None, "name": "", "email": None, "address": None},
        {"id": None, "name": "", "email": None, "address": ["a", "b"], "version": 1},
        {"id": None, "name": 3, "email": None, "address": None, "version": 1},
        {"id": None, "name": "", "email": None, "address": None, "version": -1},
        {"id": None, "name": "", "email": None, "address": None, "version": "1"},
    ],
)
def test_a_buyer_of_any_other_shape_does_not_read(data: Any) -> None:
    with pytest.raises(ValueError):
        buyer.from_snapshot(data)


@pytest.mark.parametrize("data", [{}, {"lines": [["a"]]}, {"lines": [["a", 1]], "x": 0}])
def test_ordering_lines_of_any_other_shape_do_not_read(data: Any) -> None:
    with pytest.raises(ValueError):
        basket_lines.from_snapshot(data)
