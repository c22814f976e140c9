"""The `search` argument of listings: trimmed, bounded, and text PostgreSQL can compare."""

from __future__ import annotations

from app.domain.errors import ValidationError
from app.domain.fields import UNSTORABLE, is_storable

MAX_SEARCH = 200


def clean_search(search: str | None) -> str | None:
    """Return the search trimmed (None when blank); refuse one too long or with U+0000 or a lone surrogate."""
    cleaned = (search or "").strip()
    if len(cleaned) > MAX_SEARCH:
        raise ValidationError.single("search", f"Must be at most {MAX_SEARCH} characters.")
    if not is_storable(cleaned):
        raise ValidationError.single("search", UNSTORABLE)
    return cleaned or None
