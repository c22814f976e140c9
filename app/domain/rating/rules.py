"""Field rules of feedback: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from app.domain.errors import FieldError, ValidationError
from app.ids import is_id

MIN_RATING = 0
MAX_RATING = 5
MAX_NAME = 50
MAX_COMMENT = 1000

Errors = list[FieldError]


def raise_if_any(errors: Errors) -> None:
    """Raise one ValidationError carrying every collected field error."""
    if errors:
        raise ValidationError(errors)


def short(value: str, limit: int = 40) -> str:
    """Quote a caller-supplied value in a message without echoing an oversized one."""
    return value if len(value) <= limit else value[:limit] + "…"


def entity_id(value: str, errors: Errors, field: str) -> str:
    if not is_id(value):
        errors.append(FieldError(field, "Must be a valid id."))
    return value


def person_name(value: str, errors: Errors, field: str) -> str:
    """Check a required first or last name; return it trimmed."""
    cleaned = value.strip()
    if not cleaned:
        errors.append(FieldError(field, "Is required."))
    elif len(cleaned) > MAX_NAME:
        errors.append(FieldError(field, f"Must be at most {MAX_NAME} characters."))
    return cleaned


def comment(value: str | None, errors: Errors, field: str = "comment") -> str | None:
    """Check an optional comment; return it trimmed, None when blank."""
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > MAX_COMMENT:
        errors.append(FieldError(field, f"Must be at most {MAX_COMMENT} characters."))
    return cleaned or None


def rating(value: int, errors: Errors, field: str = "rating") -> int:
    # bool is an int in Python, and a float 2.5 is no rating: only whole numbers in range pass.
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_RATING <= value <= MAX_RATING:
        errors.append(FieldError(field, f"Must be a whole number from {MIN_RATING} to {MAX_RATING}."))
    return value


def reviewer_key(book_id: str, first_name: str, last_name: str) -> str:
    """Name one reviewer of one book: case-insensitive, blanks trimmed and collapsed."""

    def normal(name: str) -> str:
        return " ".join(name.split()).casefold()

    # A separator that cannot occur in a normalized name keeps ("a b", "c") apart from ("a", "b c").
    return "\n".join((book_id.lower(), normal(first_name), normal(last_name)))
