"""Read your writes: wait (bounded) until projections have passed a position, woken by checkpoint notices.

How a waiter wakes. Every forward move of a projection checkpoint (a batch commit, and the one-statement
move past events the projection ignores) NOTIFYs PostgreSQL channel `bookworm_checkpoints` from a
trigger (migration 0008). Each process keeps one LISTEN connection (app/live/checkpoints.py) and, here,
the latest checkpoint it knows per projection plus the waiters per projection. A waiter registers, reads
the checkpoints it waits for once (so a move committed before it registered is not missed), then sleeps
until a notice passes its position or its timeout ends.

Why PostgreSQL NOTIFY rather than a Redis pub/sub notice: the notice is queued by the statement that
moves the checkpoint and delivered exactly when it commits, by the server every API process already
needs to answer the read, whichever process or machine the workers run in. A publish after commit from
the worker would be lost when the worker dies or Redis is down between the commit and the publish,
would cost the worker a round trip per move (ignored events included), and would make read-your-writes
depend on Redis too. The price: one idle connection per process outside the pool (a session connection:
not through a transaction-mode PgBouncer), and a commit that notifies takes PostgreSQL's notify lock,
which every event-store append already takes to wake the relay; checkpoint moves come one per batch.

Notices are lost while the LISTEN connection is down: on reconnection it reads every checkpoint, and
while anyone waits, one shared query re-reads the awaited checkpoints every RECHECK_INTERVAL. Bounds:
at most `limit` waits at a time per process (one more is refused with TooManyWaiters, a 503), a fixed
map of known projections, notices parsed by a bounded pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from app.aio import cancel_and_wait
from app.db import unavailable_when_down
from app.domain.errors import UnavailableError
from app.eventstore.position import START, Position
from app.live.checkpoints import CheckpointListener

log = logging.getLogger(__name__)

MAX_WAITERS = 1_000  # waits in progress per process; each holds a request, so past this refuse, don't queue
RECHECK_INTERVAL = 0.5  # seconds between re-reads of awaited checkpoints, in case a notice was lost

_CHECKPOINTS = """
SELECT name, transaction_id, global_position FROM read.projections WHERE name = ANY($1::text[])
"""


class TooManyWaiters(UnavailableError):
    """This process already holds as many read-your-writes waits as it may."""


@dataclass(eq=False)
class _Waiter:
    position: Position
    behind: set[str]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class PositionWaiters:
    """Wait for projections to pass a position; one LISTEN connection wakes every waiter of the process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        projections: Iterable[str],
        *,
        limit: int = MAX_WAITERS,
        recheck: float = RECHECK_INTERVAL,
    ) -> None:
        self._pool = pool
        self._known: dict[str, Position] = dict.fromkeys(projections, START)
        self._waiting: dict[str, set[_Waiter]] = {name: set() for name in self._known}
        self._waiters = 0
        self._limit = limit
        self._recheck = recheck
        self.listener = CheckpointListener(database_url, self._moved)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening for checkpoint notices and re-reading for lost ones."""
        await self.listener.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="position-waiters-recheck")

    async def close(self) -> None:
        """Stop listening; waits still in progress end at their timeout."""
        if self._sweeper is not None:
            await cancel_and_wait([self._sweeper])
            self._sweeper = None
        await self.listener.close()

    @property
    def waiting(self) -> int:
        """How many waits are in progress."""
        return self._waiters

    def awaited(self) -> list[str]:
        """Return the projections some wait in progress is waiting for."""
        return sorted(name for name, waiters in self._waiting.items() if waiters)

    async def wait(self, projection: str, position: Position, timeout: float) -> bool:  # noqa: ASYNC109
        """Return True once `projection` is at or past `position`, False after `timeout` seconds."""
        return not await self.wait_all((projection,), position, timeout)

    # A `timeout` argument rather than asyncio.timeout(): running out is an answer, not an error.
    async def wait_all(
        self,
        projections: Iterable[str],
        position: Position,
        timeout: float,  # noqa: ASYNC109
    ) -> list[str]:
        """Wait until every projection is at or past `position`; return those still behind after `timeout`."""
        behind = {name for name in projections if self._checkpoint(name) < position}
        if not behind:
            return []
        if self._waiters >= self._limit:
            raise TooManyWaiters("Too many requests are waiting for the read model; retry shortly.")
        waiter = _Waiter(position, behind)
        self._add(waiter)
        try:
            await self._refresh(sorted(behind))
            if waiter.behind:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await waiter.done
            return sorted(waiter.behind)
        finally:
            self._remove(waiter)

    def known(self, projection: str) -> Position:
        """The newest checkpoint of `projection` this process has heard of (the read model may be ahead)."""
        return self._checkpoint(projection)

    def _checkpoint(self, name: str) -> Position:
        try:
            return self._known[name]
        except KeyError:
            raise ValueError(f"no projection named {name!r}") from None

    def _add(self, waiter: _Waiter) -> None:
        self._waiters += 1
        for name in waiter.behind:
            self._waiting[name].add(waiter)

    def _remove(self, waiter: _Waiter) -> None:
        self._waiters -= 1
        for name in waiter.behind:
            self._waiting[name].discard(waiter)
        waiter.done.cancel()

    def _moved(self, name: str, checkpoint: Position) -> None:
        """Note that `name`'s checkpoint reached `checkpoint`; wake the waiters it passes."""
        known = self._known.get(name)
        if known is None or checkpoint <= known:
            return  # a projection this version does not know, or old news
        self._known[name] = checkpoint
        waiters = self._waiting[name]
        for waiter in [w for w in waiters if w.position <= checkpoint]:
            waiters.discard(waiter)
            waiter.behind.discard(name)
            if not waiter.behind and not waiter.done.done():
                waiter.done.set_result(None)

    @unavailable_when_down
    async def _refresh(self, names: list[str]) -> None:
        for row in await self._pool.fetch(_CHECKPOINTS, names):
            self._moved(row[0], Position(row[1], row[2]))

    async def _sweep(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._recheck)
            awaited = self.awaited()
            if not awaited:
                continue
            try:
                await self._refresh(awaited)
            except Exception as exc:  # the waiters still hear notices, or time out; the sweep goes on
                if not failing:
                    log.warning("re-reading awaited checkpoints failed: %s", type(exc).__name__)
                failing = True
            else:
                failing = False
