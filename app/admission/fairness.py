"""Requests in flight per client: a few run at once, a bounded number wait their turn, the rest are refused.

A client within its budget may still send its requests all at once. Run together, fifty of them would
make everyone else's requests wait behind theirs at every await; run a few at a time, they are served
just as fast in all, and other clients' requests interleave with only those few.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.metrics.instruments import refused


class TooManyWaiting(Exception):
    """A client already has as many requests running and waiting as it may."""


@dataclass
class _Client:
    slots: asyncio.Semaphore
    holders: int = 0  # requests running or waiting


@dataclass
class FairShare:
    """At most `running` requests of one client run at once in this process, and `waiting` more queue."""

    running: int
    waiting: int
    _clients: dict[str, _Client] = field(default_factory=dict)

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait for one of `key`'s slots (raise TooManyWaiting when its queue is full), then hold it."""
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(asyncio.Semaphore(self.running))
        if client.holders >= self.running + self.waiting:
            refused("too_many_waiting")
            raise TooManyWaiting
        client.holders += 1
        try:
            async with client.slots:
                yield
        finally:
            client.holders -= 1
            if client.holders == 0:
                del self._clients[key]  # an idle client costs nothing

    def holders(self, key: str) -> int:
        """Requests of `key` running or waiting now."""
        client = self._clients.get(key)
        return 0 if client is None else client.holders
