"""Field rules of ordering: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from decimal import Decimal

from app.domain.errors import FieldError, ValidationError
from app.ids import is_id

MAX_ADDRESS_FIELD = 100
MAX_NOTE = 500
MAX_REASON = 500
CENTS = Decimal("0.01")
ADDRESS_FIELDS = ("street", "city", "province")

Errors = list[FieldError]


def raise_if_any(errors: Errors) -> None:
    """Raise one ValidationError carrying every collected field error."""
    if errors:
        raise ValidationError(errors)


def short(value: str, limit: int = 40) -> str:
    """Quote a caller-supplied value in a message without echoing an oversized one."""
    return value if len(value) <= limit else value[:limit] + "…"


def address_field(value: str, errors: Errors, field: str) -> str:
    """Check one address field: required, at most MAX_ADDRESS_FIELD characters once trimmed."""
    cleaned = value.strip()
    if not cleaned:
        errors.append(FieldError(field, f"A {field} is required."))
    elif len(cleaned) > MAX_ADDRESS_FIELD:
        errors.append(FieldError(field, f"Must be at most {MAX_ADDRESS_FIELD} characters."))
    return cleaned


def note(value: str | None, errors: Errors, field: str = "note") -> str | None:
    """Check an optional note; a blank one is no note."""
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > MAX_NOTE:
        errors.append(FieldError(field, f"Must be at most {MAX_NOTE} characters."))
    return cleaned or None


def reason(value: str | None) -> str | None:
    """Trim a cancellation reason to what an order keeps (it comes from sagas and admins, not forms)."""
    if value is None or not value.strip():
        return None
    return value.strip()[:MAX_REASON]


def entity_id(value: str, errors: Errors, field: str) -> str:
    if not is_id(value):
        errors.append(FieldError(field, "Must be a valid id."))
    return value


def money(value: Decimal) -> Decimal:
    return value.quantize(CENTS)
