"""The basket aggregate: lines of books and quantities, and the orders it was already handed to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.domain import snapshots
from app.domain.basket.commands import (
    AddBasketItem,
    CheckoutBasket,
    ClearBasket,
    RemoveBasketItem,
    UpdateBasketItem,
)
from app.domain.errors import FieldError, NotFoundError, ValidationError
from app.domain.fields import entity_id, short
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
from app.ids import basket_id_of

STREAM_TYPE = "Basket"
MIN_QUANTITY = 1
MAX_QUANTITY = 99
EMPTY = "The basket is empty."
GONE = "The basket no longer holds any of the ordered books."
Command = AddBasketItem | UpdateBasketItem | RemoveBasketItem | ClearBasket | CheckoutBasket
# The shape `snapshot` writes; change it whenever State changes, so that older snapshots are ignored.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class State:
    # Book id -> quantity, in the order first added; evolve builds a new mapping, never edits one.
    lines: Mapping[str, int] = field(default_factory=dict)
    handled_orders: frozenset[str] = frozenset()  # checked out or failed: a repeat changes nothing


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, BasketItemAdded | BasketItemQuantityChanged):
        return replace(state, lines={**state.lines, event.book_id: event.quantity})
    if isinstance(event, BasketItemRemoved):
        return replace(state, lines={k: q for k, q in state.lines.items() if k != event.book_id})
    if isinstance(event, BasketCleared):
        return replace(state, lines={})
    if isinstance(event, BasketCheckedOut):
        lines = _take(state.lines, event.lines)
        return State(lines=lines, handled_orders=state.handled_orders | {event.order_id})
    if isinstance(event, BasketCheckoutFailed):
        return replace(state, handled_orders=state.handled_orders | {event.order_id})
    return state


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, AddBasketItem):
        return [_add(state, command)]
    if isinstance(command, UpdateBasketItem):
        return _update(state, command)
    if isinstance(command, RemoveBasketItem):
        _require_line(state, command.book_id)
        return [BasketItemRemoved(**_ids(command.customer_id), book_id=command.book_id)]
    if isinstance(command, ClearBasket):
        return [BasketCleared(**_ids(command.customer_id))] if state.lines else []
    return check_out(state, command, ())


def _add(state: State, c: AddBasketItem) -> BasketItemAdded:
    _check_line_input(c.book_id, c.quantity)
    held = state.lines.get(c.book_id, 0)
    if held + c.quantity > MAX_QUANTITY:
        raise ValidationError.single(
            "quantity",
            f"The basket may hold at most {MAX_QUANTITY} of one book; it already holds {held}.",
        )
    return BasketItemAdded(**_ids(c.customer_id), book_id=c.book_id, quantity=held + c.quantity)


def _update(state: State, c: UpdateBasketItem) -> list[Event]:
    _check_line_input(c.book_id, c.quantity)
    _require_line(state, c.book_id)
    if state.lines[c.book_id] == c.quantity:
        return []
    return [BasketItemQuantityChanged(**_ids(c.customer_id), book_id=c.book_id, quantity=c.quantity)]


def check_out(state: State, c: CheckoutBasket, ordered: tuple[CheckedOutLine, ...]) -> list[Event]:
    """Take the `ordered` lines out of the basket for `c.order_id`; none ordered takes every line.

    Each line gives at most what the basket still holds: a line the customer raised after the order
    keeps the difference, and a book added after it stays.
    """
    if c.order_id in state.handled_orders:
        return []  # the saga asked again (a retry or a redelivery): it already has its answer
    if not state.lines:
        return [BasketCheckoutFailed(**_ids(c.customer_id), order_id=c.order_id, reason=EMPTY)]
    wanted = ordered or tuple(CheckedOutLine(book_id=b, quantity=q) for b, q in state.lines.items())
    taken = tuple(
        CheckedOutLine(book_id=line.book_id, quantity=min(line.quantity, state.lines[line.book_id]))
        for line in wanted
        if line.book_id in state.lines
    )
    if not taken:
        return [BasketCheckoutFailed(**_ids(c.customer_id), order_id=c.order_id, reason=GONE)]
    left = tuple(CheckedOutLine(book_id=b, quantity=q) for b, q in _take(state.lines, taken).items())
    return [BasketCheckedOut(**_ids(c.customer_id), order_id=c.order_id, lines=taken, left=left)]


def _take(lines: Mapping[str, int], taken: tuple[CheckedOutLine, ...]) -> dict[str, int]:
    """Return the lines left after a checkout; one that names no lines (a v1 event) took them all."""
    if not taken:
        return {}
    left = dict(lines)
    for line in taken:
        quantity = left.get(line.book_id, 0) - line.quantity
        if quantity > 0:
            left[line.book_id] = quantity
        else:
            left.pop(line.book_id, None)
    return left


def _ids(customer_id: str) -> dict[str, str]:
    return {"basket_id": basket_id_of(customer_id), "customer_id": customer_id}


def _check_line_input(book_id: str, quantity: int) -> None:
    """Report a malformed book id and a quantity outside 1..99 together."""
    errors: list[FieldError] = []
    entity_id(book_id, errors, "bookId")
    # bool is an int subclass; True is not a quantity.
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        errors.append(FieldError("quantity", "Must be a whole number."))
    elif not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
        errors.append(FieldError("quantity", f"Must be between {MIN_QUANTITY} and {MAX_QUANTITY}."))
    if errors:
        raise ValidationError(errors)


def _require_line(state: State, book_id: str) -> None:
    if book_id not in state.lines:
        raise NotFoundError(f"bookId: book {short(book_id)} is not in the basket.")


def require_book(book_id: str, available: bool) -> None:
    """Refuse a book the catalog does not know or has deleted."""
    if not available:
        raise NotFoundError(f"bookId: no book with id {short(book_id)}.")


def snapshot(state: State) -> dict[str, Any]:
    """Return the state as JSON data: lines in the order first added, handled orders sorted."""
    return {
        "lines": [[book_id, quantity] for book_id, quantity in state.lines.items()],
        "handled_orders": sorted(state.handled_orders),
    }


def from_snapshot(data: object) -> State:
    """Return the state `snapshot` wrote; raise ValueError for any other data."""
    found = snapshots.fields(data, "lines", "handled_orders")
    return State(
        lines=snapshots.quantities(found["lines"], MAX_QUANTITY),
        handled_orders=frozenset(snapshots.texts(found["handled_orders"])),
    )
