"""The position of an event in commit order, and its opaque cursor string."""

from __future__ import annotations

from dataclasses import dataclass

_HEX_WIDTH = 16


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
        if len(cursor) != 2 * _HEX_WIDTH:
            raise InvalidPosition(f"not a position: {cursor[:40]!r}")
        try:
            return cls(int(cursor[:_HEX_WIDTH], 16), int(cursor[_HEX_WIDTH:], 16))
        except ValueError:
            raise InvalidPosition(f"not a position: {cursor[:40]!r}") from None


START = Position(0, 0)
