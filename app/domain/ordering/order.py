"""The order aggregate: placed from a basket at the prices of that moment, then completed or cancelled.

Status moves NEW -> COMPLETED (admins) or NEW -> CANCELLED (its buyer, an admin, or the checkout
saga); any other move is a Conflict. Someone else's order is NotFound, never Forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from app.domain.errors import ConflictError, FieldError, NotFoundError
from app.domain.ordering import buyer, rules
from app.domain.ordering.basket_lines import BasketLine
from app.domain.ordering.commands import CancelOrder, CompleteOrder, PlaceOrder
from app.events.base import Event
from app.events.ordering import OrderCancelled, OrderCompleted, OrderLine, OrderPlaced
from app.ids import basket_id_of

LABEL = "Order"
NEW, COMPLETED, CANCELLED = "NEW", "COMPLETED", "CANCELLED"
EMPTY_BASKET = "The basket is empty."


class BookFacts(Protocol):
    """What an order needs to know of a book when it is placed."""

    @property
    def name(self) -> str: ...

    @property
    def unit_price(self) -> Decimal: ...

    @property
    def available(self) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class State:
    id: str | None = None
    buyer_id: str = ""
    status: str = NEW
    total: Decimal = Decimal("0.00")
    version: int = 0


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, OrderPlaced):
        return State(id=event.order_id, buyer_id=event.buyer_id, total=event.total, version=state.version + 1)
    if isinstance(event, OrderCompleted):
        return replace(state, status=COMPLETED, version=state.version + 1)
    if isinstance(event, OrderCancelled):
        return replace(state, status=CANCELLED, version=state.version + 1)
    return state


def place(
    state: State,
    command: PlaceOrder,
    placed_by: buyer.State,
    lines: Sequence[BasketLine],
    books: Mapping[str, BookFacts],
) -> list[Event]:
    """Build the order from the basket's lines, snapshotting each book's name and unit price."""
    errors: rules.Errors = []
    rules.entity_id(command.order_id, errors, "orderId")
    note = rules.note(command.note, errors)
    errors += buyer.address_errors(placed_by)
    if not lines:
        errors.append(FieldError("basket", EMPTY_BASKET))
    rules.raise_if_any(errors)
    if state.id is not None:
        raise ConflictError(f"Order {command.order_id} already exists.")
    _require_available(lines, books)
    address = buyer.require_address(placed_by)
    order_lines = tuple(_snapshot(line, books[line.book_id]) for line in lines)
    return [
        OrderPlaced(
            order_id=command.order_id,
            buyer_id=command.buyer_id,
            buyer_name=command.buyer_name,
            buyer_email=command.buyer_email,
            buyer_email_verified=command.buyer_email_verified,
            basket_id=basket_id_of(command.buyer_id),
            street=address.street,
            city=address.city,
            province=address.province,
            note=note,
            lines=order_lines,
            total=rules.money(sum((line.unit_price * line.quantity for line in order_lines), Decimal(0))),
        )
    ]


def _snapshot(line: BasketLine, book: BookFacts) -> OrderLine:
    return OrderLine(
        book_id=line.book_id, name=book.name, quantity=line.quantity, unit_price=rules.money(book.unit_price)
    )


def _require_available(lines: Sequence[BasketLine], books: Mapping[str, BookFacts]) -> None:
    """Refuse an order whose basket holds books that are no longer sold, naming each of them."""
    gone = [line.book_id for line in lines if line.book_id not in books or not books[line.book_id].available]
    if gone:
        names = ", ".join(_named(book_id, books) for book_id in gone)
        raise NotFoundError(
            f"No longer in the catalog: {names}. Remove it from the basket and place the order again."
        )


def _named(book_id: str, books: Mapping[str, BookFacts]) -> str:
    known = books.get(book_id)
    return f"{known.name!r} ({book_id})" if known is not None and known.name else f"book {book_id}"


def complete(state: State, command: CompleteOrder) -> list[Event]:
    """Complete a NEW order (the caller's role was checked at the boundary)."""
    _require_visible(state, command.order_id, None)
    _require_new(state, command.order_id, "completed")
    return [OrderCompleted(order_id=command.order_id, buyer_id=state.buyer_id)]


def cancel(state: State, command: CancelOrder) -> list[Event]:
    """Cancel a NEW order; a customer may cancel only their own, and sees no other."""
    _require_visible(state, command.order_id, command.requested_by)
    _require_new(state, command.order_id, "cancelled")
    return [
        OrderCancelled(
            order_id=command.order_id, buyer_id=state.buyer_id, reason=rules.reason(command.reason)
        )
    ]


def decide(state: State, command: CompleteOrder | CancelOrder) -> list[Event]:
    """Validate a status change against the state; return the events it causes."""
    if isinstance(command, CompleteOrder):
        return complete(state, command)
    return cancel(state, command)


def _require_visible(state: State, order_id: str, requested_by: str | None) -> None:
    # One message for "missing" and "someone else's": the answer must not tell them apart.
    if state.id is None or (requested_by is not None and requested_by != state.buyer_id):
        raise NotFoundError(f"No order with id {rules.short(order_id)}.")


def _require_new(state: State, order_id: str, verb: str) -> None:
    if state.status != NEW:
        raise ConflictError(f"Order {order_id} is {state.status}: only a NEW order can be {verb}.")
