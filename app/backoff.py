"""Exponential backoff: the delay before each retry doubles from a first delay up to a cap."""

from __future__ import annotations

import asyncio

# 2**64 times any first delay is past every cap: counting further only risks OverflowError.
_MOST_DOUBLINGS = 64


def nth_delay(first: float, cap: float, retries: int) -> float:
    """Return the delay before retry number `retries` (0 for the first): `first` doubled that often, capped.

    For retries counted in a stored row (a scheduled message, a mail) rather than by a running Backoff.
    """
    return float(min(first * 2 ** min(max(retries, 0), _MOST_DOUBLINGS), cap))


class Backoff:
    """Exponential delay between retries, capped, reset after a success."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        """Return the delay to wait now, doubling the one after it."""
        delay, self._next = self._next, min(self._next * 2, self._cap)
        return delay

    async def wait(self) -> None:
        await asyncio.sleep(self.next())
