"""Books: given events, when a command, then events or an error."""

from __future__ import annotations

from decimal import Decimal
from functools import reduce
from typing import Any

import pytest

from app.domain.catalog import book, named
from app.domain.catalog.commands import CreateBook, DeleteBook, UpdateBook
from app.domain.commands import KEEP
from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.events.base import Event
from app.events.catalog import BookCreated, BookDeleted, BookUpdated
from app.ids import new_id
from tests.validation import fields_of

BOOK, CAT, PUB, A1, A2 = (new_id() for _ in range(5))


def given(*events: Event) -> book.State:
    return reduce(book.evolve, events, book.State())


def create(**changes: Any) -> CreateBook:
    fields: dict[str, Any] = {
        "book_id": BOOK,
        "name": "Dune",
        "description": "Sand.",
        "price": Decimal("12.5"),
        "price_sale": None,
        "category_id": CAT,
        "publisher_id": PUB,
        "author_ids": (A1,),
    }
    return CreateBook(**(fields | changes))


def created(**changes: Any) -> BookCreated:
    fields: dict[str, Any] = {
        "book_id": BOOK,
        "name": "Dune",
        "description": "Sand.",
        "price": Decimal("12.50"),
        "price_sale": None,
        "category_id": CAT,
        "publisher_id": PUB,
        "author_ids": (A1,),
    }
    return BookCreated(**(fields | changes))


def updated(**changes: Any) -> BookUpdated:
    base = created()
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__} | {"status": "IN_STOCK"}
    return BookUpdated(**(fields | changes))


def rejected_fields(command: Any, state: book.State | None = None) -> set[str]:
    """Decide `command` on `state` (no book yet by default), expect a refusal; return the fields it names."""
    with pytest.raises(ValidationError) as caught:
        book.decide(state or given(), command)
    return set(fields_of(caught.value))


# ---- create


def test_create_normalises_name_description_and_prices() -> None:
    command = create(name="  Dune ", description="  ", price=Decimal("12.5"), price_sale=Decimal("10"))
    [event] = book.decide(given(), command)
    assert event == created(description=None, price_sale=Decimal("10.00"))
    assert str(event.price) == "12.50" and str(event.price_sale) == "10.00"


def test_create_drops_duplicate_authors_keeping_order() -> None:
    [event] = book.decide(given(), create(author_ids=(A2, A1, A2, A1)))
    assert isinstance(event, BookCreated) and event.author_ids == (A2, A1)


def test_a_new_book_is_in_stock_at_version_one() -> None:
    state = given(created())
    assert (state.status, state.version, state.exists) == ("IN_STOCK", 1, True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"description": "x" * 2001}, "description"),
        ({"price": Decimal("0")}, "price"),
        ({"price": Decimal("-1")}, "price"),
        ({"price": Decimal("1.005")}, "price"),
        ({"price": Decimal("NaN")}, "price"),
        ({"price": Decimal("Infinity")}, "price"),
        ({"price": Decimal("1e30")}, "price"),
        ({"price_sale": Decimal("0")}, "priceSale"),
        ({"price_sale": Decimal("0.001")}, "priceSale"),
        ({"price_sale": Decimal("12.51")}, "priceSale"),
        ({"category_id": "nope"}, "categoryId"),
        ({"publisher_id": ""}, "publisherId"),
        ({"author_ids": ()}, "authorIds"),
        ({"author_ids": (A1, "nope")}, "authorIds"),
        ({"author_ids": tuple(new_id() for _ in range(21))}, "authorIds"),
        ({"book_id": "nope"}, "id"),
    ],
)
def test_create_refuses_a_bad_field(changes: dict[str, Any], field: str) -> None:
    assert rejected_fields(create(**changes)) == {field}


def test_create_accepts_the_limits() -> None:
    command = create(
        name="x" * 100,
        description="d" * 2000,
        price=Decimal("12.500"),
        price_sale=Decimal("12.50"),
        author_ids=tuple(new_id() for _ in range(20)),
    )
    assert len(book.decide(given(), command)) == 1


def test_twenty_authors_after_removing_duplicates_are_accepted() -> None:
    authors = tuple(new_id() for _ in range(20))
    [event] = book.decide(given(), create(author_ids=authors + authors[:5]))
    assert isinstance(event, BookCreated) and event.author_ids == authors


def test_create_reports_every_bad_field_at_once() -> None:
    command = create(name=" ", price=Decimal("-1"), category_id="x", publisher_id="y", author_ids=())
    assert rejected_fields(command) == {"name", "price", "categoryId", "publisherId", "authorIds"}


def test_create_on_an_existing_stream_conflicts() -> None:
    with pytest.raises(ConflictError):
        book.decide(given(created()), create())


# ---- update


def test_update_changes_only_the_given_fields() -> None:
    command = UpdateBook(book_id=BOOK, price=Decimal("9.9"), status="OUT_OF_STOCK")
    assert book.decide(given(created()), command) == [updated(price=Decimal("9.90"), status="OUT_OF_STOCK")]


def test_update_tells_keep_from_none() -> None:
    state = given(created(price_sale=Decimal("10.00")))
    assert book.decide(state, UpdateBook(book_id=BOOK, description=KEEP, price_sale=KEEP)) == []
    cleared = book.decide(state, UpdateBook(book_id=BOOK, description=None, price_sale=None))
    assert cleared == [updated(description=None, price_sale=None)]


def test_update_with_nothing_new_emits_nothing() -> None:
    assert book.decide(given(created()), UpdateBook(book_id=BOOK, name=" Dune ", price=Decimal("12.5"))) == []


def test_update_replaces_references() -> None:
    cat, pub = new_id(), new_id()
    command = UpdateBook(book_id=BOOK, category_id=cat, publisher_id=pub, author_ids=(A2, A2, A1))
    [event] = book.decide(given(created()), command)
    state = book.evolve(given(created()), event)
    assert (state.category_id, state.publisher_id, state.author_ids, state.version) == (cat, pub, (A2, A1), 2)


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"name": " "}, {"name"}),
        ({"status": "SOLD"}, {"status"}),
        ({"price": Decimal("0.001")}, {"price"}),
        ({"price_sale": Decimal("13")}, {"priceSale"}),
        ({"author_ids": ()}, {"authorIds"}),
        ({"category_id": "x", "publisher_id": "y"}, {"categoryId", "publisherId"}),
        ({"expected_version": 0}, {"expectedVersion"}),
        ({"description": "x" * 2001, "name": ""}, {"description", "name"}),
    ],
)
def test_update_refuses_bad_fields(changes: dict[str, Any], fields: set[str]) -> None:
    assert rejected_fields(UpdateBook(book_id=BOOK, **changes), given(created())) == fields


def test_a_lower_price_may_not_undercut_the_existing_sale_price() -> None:
    state = given(created(price_sale=Decimal("10.00")))
    assert rejected_fields(UpdateBook(book_id=BOOK, price=Decimal("9.99")), state) == {"price"}
    [event] = book.decide(state, UpdateBook(book_id=BOOK, price=Decimal("9.99"), price_sale=Decimal("9")))
    assert isinstance(event, BookUpdated) and event.price_sale == Decimal("9.00")


def test_update_with_a_stale_expected_version_conflicts() -> None:
    state = given(created(), updated(name="Dune II"))
    with pytest.raises(ConflictError):
        book.decide(state, UpdateBook(book_id=BOOK, name="X", expected_version=1))
    assert book.decide(state, UpdateBook(book_id=BOOK, name="X", expected_version=2)) == [updated(name="X")]


@pytest.mark.parametrize("history", ["missing", "deleted"])
def test_update_or_delete_of_a_missing_or_deleted_book_is_not_found(history: str) -> None:
    state = given() if history == "missing" else given(created(), BookDeleted(book_id=BOOK))
    for command in (UpdateBook(book_id=BOOK, name="X"), DeleteBook(book_id=BOOK)):
        with pytest.raises(NotFoundError):
            book.decide(state, command)


# ---- delete


def test_delete_is_soft() -> None:
    state = given(created())
    assert book.decide(state, DeleteBook(book_id=BOOK)) == [BookDeleted(book_id=BOOK)]
    after = book.evolve(state, BookDeleted(book_id=BOOK))
    assert after.deleted and after.name == "Dune" and after.version == 2 and not after.exists


# ---- references


def live(entity_id: str) -> named.State:
    return named.State(id=entity_id, name="x", version=1)


def found_for(state: book.State, **overrides: named.State) -> dict[book.Reference, named.State]:
    return {r: overrides.get(r.field, live(r.target_id)) for r in book.references(state)}


def test_references_list_category_publisher_and_authors() -> None:
    state = given(created(author_ids=(A1, A2)))
    assert [(r.field, r.kind, r.target_id) for r in book.references(state)] == [
        ("categoryId", "Category", CAT),
        ("publisherId", "Publisher", PUB),
        ("authorIds", "Author", A1),
        ("authorIds", "Author", A2),
    ]
    assert book.references(given(created(), BookDeleted(book_id=BOOK))) == []


def test_existing_references_are_accepted() -> None:
    state = given(created())
    book.require_references(book.references(state), found_for(state))


@pytest.mark.parametrize("field", ["categoryId", "publisherId", "authorIds"])
def test_a_missing_or_deleted_reference_is_not_found_naming_the_field(field: str) -> None:
    state = given(created())
    for target in (named.State(), named.State(id=new_id(), name="x", deleted=True, version=2)):
        with pytest.raises(NotFoundError, match=field):
            book.require_references(book.references(state), found_for(state, **{field: target}))
