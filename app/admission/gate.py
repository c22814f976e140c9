"""Expensive operations take turns in each process, so cheap ones never queue behind their CPU.

An API process runs on one core. Twelve queries of the most a query may cost, run at once, each complete
their results in long synchronous stretches; everything else on the loop — a mutation, a subscriber's
change notice, a lease-free health check — waits for all twelve stretches at every await it makes. Run
one or two at a time, they finish just as fast in all, and everything else waits for at most those.

`CostGate` is a FIFO semaphore weighted by an operation's cost: operations cheaper than `threshold` pass
without waiting; the rest hold `min(cost, capacity)` of the gate's `capacity` while they execute and
wait, in arrival order, for room. A wait is bounded: past `timeout` the operation is refused as busy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

from app.metrics.instruments import refused
from app.settings import Settings

PASS: AbstractAsyncContextManager[None] = nullcontext()  # the turn of an operation that holds no room


class GateBusy(Exception):
    """An expensive operation waited its whole timeout for room to run."""


@dataclass
class CostGate:
    """At most `capacity` points of expensive operations run at once in this process, in arrival order."""

    capacity: int
    threshold: int
    timeout: float
    running: int = 0
    _waiting: deque[tuple[int, asyncio.Future[None]]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.threshold <= 0 or self.timeout <= 0:
            raise ValueError("a cost gate needs a positive capacity, threshold and timeout")

    @classmethod
    def from_settings(cls, settings: Settings) -> CostGate:
        """The gate the settings describe; ValueError names the settings when one is not positive."""
        try:
            return cls(settings.max_running_cost, settings.heavy_query_cost, settings.heavy_query_wait)
        except ValueError:
            raise ValueError(
                "BOOKWORM_MAX_RUNNING_COST, BOOKWORM_HEAVY_QUERY_COST and BOOKWORM_HEAVY_QUERY_WAIT "
                "must be positive"
            ) from None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def turn(self, cost: int) -> AbstractAsyncContextManager[None]:
        """Hold room for an operation of `cost` while the block runs; cheap operations hold none."""
        if cost < self.threshold:
            return PASS  # nearly every operation: no generator's context manager made and run for it
        return self._hold(min(cost, self.capacity))

    @asynccontextmanager
    async def _hold(self, weight: int) -> AsyncIterator[None]:
        await self._enter(weight)
        try:
            yield
        finally:
            self.running -= weight
            self._wake()

    async def _enter(self, weight: int) -> None:
        if not self._waiting and self.running + weight <= self.capacity:
            self.running += weight
            return
        entry = (weight, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(self.timeout):
                await entry[1]
        except BaseException as exc:
            if entry[1].done() and not entry[1].cancelled():
                # Room was handed over just as the wait ended: give it back to the next in line.
                self.running -= weight
            else:
                self._waiting.remove(entry)
            self._wake()
            if isinstance(exc, TimeoutError):
                refused("server_busy")
                raise GateBusy from None
            raise

    def _wake(self) -> None:
        """Let in, in order, every waiter at the head of the queue that now fits."""
        while self._waiting and self.running + self._waiting[0][0] <= self.capacity:
            weight, future = self._waiting.popleft()
            if not future.done():
                self.running += weight
                future.set_result(None)
