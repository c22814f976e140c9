"""Workers: the relay, one runner per consumer and the scheduler, each supervised, in one process.

The runners' leases are renewed by one LeaseKeeper per Workers, on a thread and connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from app.aio import cancel_and_wait
from app.backoff import Backoff
from app.bus.consumer import ConsumerRunner
from app.bus.keeper import LeaseKeeper
from app.bus.protocol import Announcer, Consumer
from app.bus.relay import Relay
from app.bus.scheduler import Handler, Scheduler
from app.eventstore import EventStore
from app.settings import Settings

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
RESTART_FIRST, RESTART_CAP = 0.5, 30.0  # seconds before restarting a loop that crashed or returned
_NO_JOBS: Mapping[str, tuple[float, Job]] = MappingProxyType({})
_NO_HANDLERS: Mapping[str, Handler] = MappingProxyType({})


class Workers:
    """Background loops of a worker process; safe to run in as many processes as wanted."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        event_store: EventStore,
        consumers: Sequence[Consumer],
        announcer: Announcer,
        periodic: Mapping[str, tuple[float, Job]] = _NO_JOBS,
        *,
        scheduled: Mapping[str, Handler] = _NO_HANDLERS,
    ) -> None:
        assert settings.database_url, "the workers need settings.database_url"
        self.pool = pool
        self.keeper = LeaseKeeper(settings.database_url, settings.lease_ttl)
        self.relay = Relay(settings, pool, redis, event_store)
        self.runners = [
            ConsumerRunner(settings, pool, redis, event_store, c, announcer, self.keeper) for c in consumers
        ]
        self.scheduler = Scheduler(pool)
        self._handlers: dict[str, Handler] = dict(scheduled)
        for kind, (seconds, job) in periodic.items():
            self.scheduler.every(kind, seconds)
            self._handlers[kind] = _ignore_payload(job)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every loop in the background."""
        if self._tasks:
            return
        self.keeper.start()
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [("relay", self.relay.run)]
        loops += [(f"consumer {r.name}", r.run) for r in self.runners]
        loops.append(("scheduler", lambda: self.scheduler.run(self._handlers)))
        self._tasks = [asyncio.create_task(_supervise(name, loop), name=name) for name, loop in loops]

    async def stop(self) -> None:
        """Cancel every loop, wait for them, and hand the leases over at once."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await runner.release()
        await self.keeper.stop()


def _ignore_payload(job: Job) -> Handler:
    async def handle(_: dict[str, Any]) -> None:
        await job()

    return handle


async def _supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run `loop` forever: an unexpected error or return is logged and the loop restarted with backoff."""
    backoff = Backoff(RESTART_FIRST, RESTART_CAP)
    while True:
        delay = backoff.next()
        try:
            await loop()
            log.error("%s stopped on its own; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in %.1f s", name, delay)
        await asyncio.sleep(delay)
