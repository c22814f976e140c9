"""The position of an event in commit order, and its opaque cursor string."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX_WIDTH = 16
# Exactly what __str__ prints: int() alone would also take "0x", "+", "_", spaces and non-ASCII digits.
_CURSOR = re.compile(f"[0-9a-f]{{{2 * _HEX_WIDTH}}}")
# Both halves are PostgreSQL bigints (the transaction id is read as xid8::text::bigint).
MAX_PART = 2**63 - 1


class InvalidPosition(ValueError):
    """A cursor string that is not a position Bookworm handed out."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """(transaction id, global position): the order in which events became visible."""

    transaction_id: int
    global_position: int

    def __str__(self) -> str:
        return f"{self.transaction_id:0{_HEX_WIDTH}x}{self.global_position:0{_HEX_WIDTH}x}"

    @classmethod
    def parse(cls, cursor: str) -> Position:
        """Parse a cursor string; raise InvalidPosition for anything else."""
        if not isinstance(cursor, str) or _CURSOR.fullmatch(cursor) is None:
            raise InvalidPosition(f"not a position: {str(cursor)[:40]!r}")
        transaction_id, global_position = int(cursor[:_HEX_WIDTH], 16), int(cursor[_HEX_WIDTH:], 16)
        if transaction_id > MAX_PART or global_position > MAX_PART:
            raise InvalidPosition(f"not a position: {cursor!r}")
        return cls(transaction_id, global_position)


START = Position(0, 0)
