"""Field checks every context shares: each appends to a list of FieldErrors, so one error reports them all.

This is a shared kernel of plain value rules, not a context: it knows no aggregate and no event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.domain.errors import FieldError, ValidationError
from app.ids import is_id

Errors = list[FieldError]

# What PostgreSQL text and jsonb cannot hold (U+0000, lone UTF-16 surrogates): refused as input,
# since the append would fail, and a surrogate pair would come back from jsonb as another string.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "Must not contain U+0000 or surrogate code points."
NOT_AN_ID = "Not a valid id (expected a UUID such as 0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3)."
NOT_IDS = "Must hold valid ids only (expected UUIDs such as 0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3)."


def is_storable(text: str) -> bool:
    """Tell whether PostgreSQL can store `text` as it is (no U+0000, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def raise_if_any(errors: Errors) -> None:
    """Raise one ValidationError carrying every collected field error."""
    if errors:
        raise ValidationError(errors)


def short(value: str, limit: int = 40) -> str:
    """Quote a caller-supplied value in a message without echoing an oversized one."""
    return value if len(value) <= limit else value[:limit] + "…"


def entity_id(value: str, errors: Errors, field: str) -> str:
    if not is_id(value):
        errors.append(FieldError(field, NOT_AN_ID))
    return value


def entity_ids(values: Iterable[str], errors: Errors, field: str) -> bool:
    """Report `field` once when any of `values` is not an id; tell whether all are."""
    if all(isinstance(v, str) and is_id(v) for v in values):
        return True
    errors.append(FieldError(field, NOT_IDS))
    return False


def check_id(field: str, value: str) -> str:
    """Return `value` as a canonical (lower-case) id, or raise ValidationError naming `field`."""
    errors: Errors = []
    entity_id(value, errors, field)
    raise_if_any(errors)
    return value.lower()


def required_text(value: str, errors: Errors, field: str, *, limit: int, missing: str) -> str:
    """Check a required text: not blank, at most `limit` characters once trimmed; return it trimmed."""
    cleaned = value.strip()
    if not cleaned:
        errors.append(FieldError(field, missing))
    elif len(cleaned) > limit:
        errors.append(FieldError(field, f"Must be at most {limit} characters."))
    elif not is_storable(cleaned):
        errors.append(FieldError(field, UNSTORABLE))
    return cleaned


def optional_text(value: str | None, errors: Errors, field: str, *, limit: int) -> str | None:
    """Check an optional text of at most `limit` characters; return it trimmed, None when blank."""
    if value is None:
        return None
    cleaned = value.strip()
    if len(cleaned) > limit:
        errors.append(FieldError(field, f"Must be at most {limit} characters."))
    elif not is_storable(cleaned):
        errors.append(FieldError(field, UNSTORABLE))
    return cleaned or None
