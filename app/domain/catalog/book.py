"""The book aggregate: details, price, status, references to its category, publisher and authors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import NamedTuple

from app.domain.catalog import named, rules
from app.domain.catalog.commands import CreateBook, DeleteBook, UpdateBook
from app.domain.catalog.status import BookStatus
from app.domain.commands import KEEP, Keep
from app.domain.errors import ConflictError, NotFoundError
from app.events.base import Event
from app.events.catalog import BookCreated, BookDeleted, BookUpdated

LABEL = "Book"
Command = CreateBook | UpdateBook | DeleteBook


@dataclass(frozen=True, kw_only=True)
class State:
    id: str | None = None
    name: str = ""
    description: str | None = None
    price: Decimal = Decimal("0.00")
    price_sale: Decimal | None = None
    category_id: str = ""
    publisher_id: str = ""
    author_ids: tuple[str, ...] = ()
    status: BookStatus = BookStatus.IN_STOCK
    deleted: bool = False
    version: int = 0

    @property
    def exists(self) -> bool:
        return self.id is not None and not self.deleted


NEW = State()  # a stream with no events yet: one instance serves every load (a State is never changed)


class Reference(NamedTuple):
    """One entity a book points at: the input field that names it, its aggregate, and its id.

    A named tuple, not a frozen dataclass: every createBook builds its references and keys the targets'
    states by them, and a tuple is built, hashed and compared in C.
    """

    field: str
    kind: str  # Author | Category | Publisher
    target_id: str


def evolve(state: State, event: Event) -> State:
    """Fold one event into the state."""
    if isinstance(event, BookCreated):
        return _with_details(
            event.book_id, event, BookStatus.IN_STOCK, deleted=False, version=state.version + 1
        )
    if isinstance(event, BookUpdated):
        status = BookStatus(event.status)
        return _with_details(state.id, event, status, deleted=state.deleted, version=state.version + 1)
    if isinstance(event, BookDeleted):
        return replace(state, deleted=True, version=state.version + 1)
    return state


def _with_details(
    book_id: str | None, event: BookCreated | BookUpdated, status: BookStatus, *, deleted: bool, version: int
) -> State:
    """The state `event` leaves, built in one init: every write of a book folds its event, and a frozen
    dataclass's replace costs more than an init."""
    return State(
        id=book_id,
        name=event.name,
        description=event.description,
        price=event.price,
        price_sale=event.price_sale,
        category_id=event.category_id,
        publisher_id=event.publisher_id,
        author_ids=event.author_ids,
        status=status,
        deleted=deleted,
        version=version,
    )


def decide(state: State, command: Command) -> list[Event]:
    """Validate a command against the state; return the events it causes."""
    if isinstance(command, CreateBook):
        return [_create(state, command)]
    if isinstance(command, UpdateBook):
        return _update(state, command)
    _require_live(state, command.book_id)
    return [BookDeleted(book_id=command.book_id)]


def _create(state: State, c: CreateBook) -> BookCreated:
    errors: rules.Errors = []
    rules.entity_id(c.book_id, errors, "id")
    price = rules.price(c.price, errors, "price")
    sale = None if c.price_sale is None else rules.price(c.price_sale, errors, "priceSale")
    if not errors:
        rules.sale_within_price(sale, price, errors, "priceSale")
    event = BookCreated(
        book_id=c.book_id,
        name=rules.name(c.name, errors),
        description=rules.description(c.description, errors),
        price=price,
        price_sale=sale,
        category_id=rules.entity_id(c.category_id, errors, "categoryId"),
        publisher_id=rules.entity_id(c.publisher_id, errors, "publisherId"),
        author_ids=rules.author_ids(c.author_ids, errors),
    )
    rules.raise_if_any(errors)
    if state.id is not None:
        raise ConflictError(f"Book {c.book_id} already exists.")
    return event


def _update(state: State, c: UpdateBook) -> list[Event]:
    _require_live(state, c.book_id)
    errors: rules.Errors = []
    rules.expected_version(c.expected_version, errors)
    price = state.price if c.price is KEEP else rules.price(c.price, errors, "price")
    sale = state.price_sale
    if c.price_sale is not KEEP:
        sale = None if c.price_sale is None else rules.price(c.price_sale, errors, "priceSale")
    if not errors:
        # Blame the field the caller sent: a lower price can push an existing sale price over it.
        rules.sale_within_price(sale, price, errors, "price" if c.price_sale is KEEP else "priceSale")
    event = BookUpdated(
        book_id=c.book_id,
        name=state.name if c.name is KEEP else rules.name(c.name, errors),
        description=state.description if c.description is KEEP else rules.description(c.description, errors),
        price=price,
        price_sale=sale,
        category_id=_kept(state.category_id, c.category_id, errors, "categoryId"),
        publisher_id=_kept(state.publisher_id, c.publisher_id, errors, "publisherId"),
        author_ids=state.author_ids if c.author_ids is KEEP else rules.author_ids(c.author_ids, errors),
        status=state.status.value if c.status is KEEP else rules.status(c.status, errors),
    )
    rules.raise_if_any(errors)
    if c.expected_version is not None and c.expected_version != state.version:
        raise ConflictError(
            f"Book {c.book_id} is at version {state.version}, not {c.expected_version}: "
            "it was changed by someone else; reload and retry."
        )
    return [] if event == _as_updated(state) else [event]


def _kept(current: str, given: str | Keep, errors: rules.Errors, field: str) -> str:
    return current if given is KEEP else rules.entity_id(given, errors, field)


def _as_updated(state: State) -> BookUpdated:
    return BookUpdated(
        book_id=state.id or "",
        status=state.status.value,
        name=state.name,
        description=state.description,
        price=state.price,
        price_sale=state.price_sale,
        category_id=state.category_id,
        publisher_id=state.publisher_id,
        author_ids=state.author_ids,
    )


def _require_live(state: State, book_id: str) -> None:
    if not state.exists:
        raise NotFoundError(f"No book with id {rules.short(book_id)}.")


def references(state: State) -> list[Reference]:
    """List what a live book points at, in input-field order."""
    if not state.exists:
        return []
    return [
        Reference("categoryId", "Category", state.category_id),
        Reference("publisherId", "Publisher", state.publisher_id),
        *(Reference("authorIds", "Author", a) for a in state.author_ids),
    ]


def require_references(refs: Iterable[Reference], found: Mapping[Reference, named.State]) -> None:
    """Refuse a book whose references (`references(state)`: its category, publisher or authors) do not
    exist (or are deleted)."""
    missing = [r for r in refs if not found.get(r, named.NEW).exists]
    if missing:
        raise NotFoundError(
            " ".join(f"{r.field}: no {r.kind.lower()} with id {rules.short(r.target_id)}." for r in missing)
        )
