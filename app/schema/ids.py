"""Identifiers at the API boundary: malformed ids become ValidationFailed naming the field."""

from __future__ import annotations

from collections.abc import Iterable

from app.domain.errors import FieldError, ValidationError
from app.ids import is_id

NOT_AN_ID = "Not a valid id (expected a UUID such as 0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3)."


def id_errors(field: str, value: str) -> list[FieldError]:
    return [] if is_id(value) else [FieldError(field, NOT_AN_ID)]


def list_errors(field: str, values: Iterable[str]) -> list[FieldError]:
    return [error for i, value in enumerate(values) for error in id_errors(f"{field}[{i}]", value)]


def require_ids(errors: list[FieldError]) -> None:
    """Raise ValidationError when any id check failed."""
    if errors:
        raise ValidationError(errors)


def check_id(field: str, value: str) -> str:
    """Return `value` when it is a well-formed id, else raise ValidationError naming `field`."""
    require_ids(id_errors(field, value))
    return value.lower()
