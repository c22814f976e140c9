"""Field rules of the catalog: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from app.domain.errors import FieldError, ValidationError
from app.ids import is_id

MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_AUTHORS = 20
# Beyond any real book price; also keeps quantize() inside the decimal context's precision.
MAX_PRICE = Decimal("999999999.99")
CENTS = Decimal("0.01")
STATUSES = ("IN_STOCK", "OUT_OF_STOCK")

Errors = list[FieldError]


def raise_if_any(errors: Errors) -> None:
    """Raise one ValidationError carrying every collected field error."""
    if errors:
        raise ValidationError(errors)


def short(value: str, limit: int = 40) -> str:
    """Quote a caller-supplied value in a message without echoing an oversized one."""
    return value if len(value) <= limit else value[:limit] + "…"


def name(value: str, errors: Errors, field: str = "name") -> str:
    cleaned = value.strip()
    if not cleaned:
        errors.append(FieldError(field, "A name is required."))
    elif len(cleaned) > MAX_NAME:
        errors.append(FieldError(field, f"Must be at most {MAX_NAME} characters."))
    return cleaned


def description(value: str | None, errors: Errors, field: str = "description") -> str | None:
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > MAX_DESCRIPTION:
        errors.append(FieldError(field, f"Must be at most {MAX_DESCRIPTION} characters."))
    return cleaned or None


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


def entity_id(value: str, errors: Errors, field: str) -> str:
    if not is_id(value):
        errors.append(FieldError(field, "Must be a valid id."))
    return value


def author_ids(values: Sequence[str], errors: Errors, field: str = "authorIds") -> tuple[str, ...]:
    """Check author ids; duplicates are dropped keeping the first occurrence."""
    unique = tuple(dict.fromkeys(values))
    if not unique:
        errors.append(FieldError(field, "At least one author is required."))
    elif len(unique) > MAX_AUTHORS:
        errors.append(FieldError(field, f"At most {MAX_AUTHORS} authors."))
    elif not all(is_id(v) for v in unique):
        errors.append(FieldError(field, "Must contain valid ids only."))
    return unique


def status(value: str, errors: Errors, field: str = "status") -> str:
    if value not in STATUSES:
        errors.append(FieldError(field, f"Must be one of {', '.join(STATUSES)}."))
    return value


def expected_version(value: int | None, errors: Errors, field: str = "expectedVersion") -> None:
    if value is not None and value < 1:
        errors.append(FieldError(field, "Must be at least 1."))
