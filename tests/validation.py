"""Read a ValidationError as the tests assert on it: field by field."""

from __future__ import annotations

from app.domain.errors import ValidationError


def fields_of(error: ValidationError) -> dict[str, str]:
    """Return each field the error names with its message, in the order the error gives them."""
    return {f.field: f.message for f in error.fields}
