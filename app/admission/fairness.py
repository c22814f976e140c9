"""Requests in flight per client: a few run at once, a bounded number wait their turn, the rest are refused.

A client within its budget may still send its requests all at once. Run together, fifty of them would
make everyone else's requests wait behind theirs at every await; run a few at a time, they are served
just as fast in all, and other clients' requests interleave with only those few.
"""

from __future__ import annotations

import asyncio
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

    def turn(self, key: str) -> Turn:
        """Wait for one of `key`'s slots (raise TooManyWaiting when its queue is full), then hold it."""
        return Turn(self, key)

    def holders(self, key: str) -> int:
        """Requests of `key` running or waiting now."""
        client = self._clients.get(key)
        return 0 if client is None else client.holders


class Turn:
    """One request's turn among its client's requests, as an async context manager: a slot, entered to
    exit (a class of its own, not a generator's: it is entered by every request)."""

    __slots__ = ("_client", "_key", "_share")

    def __init__(self, share: FairShare, key: str) -> None:
        self._share = share
        self._key = key

    async def __aenter__(self) -> None:
        share, key = self._share, self._key
        client = share._clients.get(key)
        if client is None:
            client = share._clients[key] = _Client(asyncio.Semaphore(share.running))
        if client.holders >= share.running + share.waiting:
            refused("too_many_waiting")
            raise TooManyWaiting
        client.holders += 1
        self._client = client
        try:
            await client.slots.acquire()
        except BaseException:
            self._leave()  # cancelled while waiting: its place in the queue is free again
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.slots.release()
        self._leave()

    def _leave(self) -> None:
        client = self._client
        client.holders -= 1
        if client.holders == 0:
            del self._share._clients[self._key]  # an idle client costs nothing
