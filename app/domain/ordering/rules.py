"""Field rules of ordering: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from decimal import Decimal

from app.domain.fields import Errors, entity_id, optional_text, raise_if_any, required_text, short

MAX_ADDRESS_FIELD = 100
MAX_NOTE = 500
MAX_REASON = 500
CENTS = Decimal("0.01")


def reason(value: str | None) -> str | None:
    """Trim a cancellation reason to what an order keeps (it comes from sagas and admins, not forms)."""
    if value is None or not value.strip():
        return None
    return value.strip()[:MAX_REASON]


def money(value: Decimal) -> Decimal:
    return value.quantize(CENTS)


def address_field(value: str, errors: Errors, field: str) -> str:
    """Check one address field: required, at most MAX_ADDRESS_FIELD characters once trimmed."""
    return required_text(value, errors, field, limit=MAX_ADDRESS_FIELD, missing=f"A {field} is required.")


def note(value: str | None, errors: Errors, field: str = "note") -> str | None:
    """Check an optional note; a blank one is no note."""
    return optional_text(value, errors, field, limit=MAX_NOTE)


__all__ = ["Errors", "entity_id", "raise_if_any", "short"]
