"""Field rules of feedback: each check appends to a list of FieldErrors so one error reports them all."""

from __future__ import annotations

import unicodedata

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


def reviewer_key(book_id: str, customer_id: str) -> str:
    """Name one customer's review of one book."""
    # The "customer" tag keeps these values apart from the legacy name keys of v1 feedback.
    return "\n".join((book_id.lower(), "customer", customer_id))


def legacy_reviewer_key(book_id: str, first_name: str, last_name: str) -> str:
    """Name the reviewer of v1 feedback, which had no author: case-insensitive, blanks collapsed."""

    def normal(name: str) -> str:
        return " ".join(name.split()).casefold()

    # A separator that cannot occur in a normalized name keeps ("a b", "c") apart from ("a", "b c").
    return "\n".join((book_id.lower(), normal(first_name), normal(last_name)))


def display_name(value: str) -> str:
    """Return `value` in NFKC form without format characters (zero-width, joiners, BOM)."""
    # NFKC folds full-width and compatibility letters (U+FF21 -> "A"); category Cf holds the invisible
    # characters that would make look-alike names.
    folded = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def person_name(value: str, errors: Errors, field: str) -> str:
    """Check a required first or last name; return it normalised and trimmed."""
    return required_text(display_name(value), errors, field, limit=MAX_NAME, missing="Is required.")


def comment(value: str | None, errors: Errors, field: str = "comment") -> str | None:
    """Check an optional comment; return it trimmed, None when blank."""
    return optional_text(value, errors, field, limit=MAX_COMMENT)


__all__ = ["Errors", "entity_id", "raise_if_any", "short"]
