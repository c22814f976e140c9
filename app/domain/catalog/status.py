"""A book's status: the one declaration the domain, the read side and the GraphQL enum share."""

from __future__ import annotations

import enum


class BookStatus(enum.StrEnum):
    """Whether a book can be ordered now; events and read rows hold the plain value."""

    IN_STOCK = "IN_STOCK"
    OUT_OF_STOCK = "OUT_OF_STOCK"

    @classmethod
    def one_of(cls) -> str:
        """Return the message that refuses any other value."""
        return f"Must be one of {', '.join(cls)}."
