"""Field rules of feedback: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

from app.domain.errors import FieldError
from app.domain.fields import Errors, entity_id, optional_text, raise_if_any, required_text, short

MIN_RATING = 0
MAX_RATING = 5
MAX_NAME = 50
MAX_COMMENT = 1000


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


def person_name(value: str, errors: Errors, field: str) -> str:
    """Check a required first or last name; return it trimmed."""
    return required_text(value, errors, field, limit=MAX_NAME, missing="Is required.")


def comment(value: str | None, errors: Errors, field: str = "comment") -> str | None:
    """Check an optional comment; return it trimmed, None when blank."""
    return optional_text(value, errors, field, limit=MAX_COMMENT)


__all__ = ["Errors", "entity_id", "raise_if_any", "short"]
