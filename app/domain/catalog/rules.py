"""Field rules of the catalog: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from app.domain.catalog.status import BookStatus
from app.domain.errors import FieldError
from app.domain.fields import Errors, entity_id, entity_ids, optional_text, raise_if_any, required_text, short

MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_AUTHORS = 20
# Beyond any real book price; also keeps quantize() inside the decimal context's precision.
MAX_PRICE = Decimal("999999999.99")
CENTS = Decimal("0.01")


def price(value: Decimal, errors: Errors, field: str) -> Decimal:
    """Check a positive amount with at most two decimals; return it normalised to two decimals."""
    if not value.is_finite() or value <= 0:
        errors.append(FieldError(field, "Must be greater than 0."))
        return value
    if value > MAX_PRICE:
        errors.append(FieldError(field, f"Must be at most {MAX_PRICE}."))
        return value
    cents = value.quantize(CENTS)
    if cents != value:
        errors.append(FieldError(field, "Must have at most two decimals."))
    return cents


def sale_within_price(sale: Decimal | None, full: Decimal, errors: Errors, field: str) -> None:
    if sale is not None and sale > full:
        errors.append(FieldError(field, "The sale price must not exceed the price."))


def author_ids(values: Sequence[str], errors: Errors, field: str = "authorIds") -> tuple[str, ...]:
    """Check author ids; duplicates are dropped keeping the first occurrence."""
    unique = tuple(dict.fromkeys(values))
    if not unique:
        errors.append(FieldError(field, "At least one author is required."))
    elif len(unique) > MAX_AUTHORS:
        errors.append(FieldError(field, f"At most {MAX_AUTHORS} authors."))
    else:
        entity_ids(unique, errors, field)
    return unique


def status(value: str, errors: Errors, field: str = "status") -> str:
    """Check a book status; return it as the plain string an event holds."""
    if value not in tuple(BookStatus):
        errors.append(FieldError(field, BookStatus.one_of()))
    return str(value)


def expected_version(value: int | None, errors: Errors, field: str = "expectedVersion") -> None:
    if value is not None and value < 1:
        errors.append(FieldError(field, "Must be at least 1."))


def name(value: str, errors: Errors, field: str = "name") -> str:
    return required_text(value, errors, field, limit=MAX_NAME, missing="A name is required.")


def description(value: str | None, errors: Errors, field: str = "description") -> str | None:
    return optional_text(value, errors, field, limit=MAX_DESCRIPTION)


__all__ = ["Errors", "entity_id", "raise_if_any", "short"]
