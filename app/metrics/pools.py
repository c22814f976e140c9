"""How much of each PostgreSQL pool is in use: sampled every second by the process that owns the pool.

A scrape reaches one API process, so the figures of the others (and of the worker) must already be in
the shared files: each process writes its own pools' figures there, and the scrape sums them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.aio import cancel_and_wait
from app.metrics.instruments import POOL_CONNECTIONS, POOL_MAX

SAMPLE_EVERY = 1.0  # seconds; reading a pool's sizes is three attribute reads


@asynccontextmanager
async def pool_use(name: str, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Record `pool`'s connections in use and idle under `name` while the block runs."""
    sampling = asyncio.create_task(_sample(name, pool), name=f"metrics-pool-{name}")
    try:
        yield
    finally:
        await cancel_and_wait([sampling])
        _record(name, in_use=0, idle=0, most=0)  # this process holds none of them any more


async def _sample(name: str, pool: asyncpg.Pool) -> None:
    while True:
        idle = pool.get_idle_size()
        _record(name, in_use=pool.get_size() - idle, idle=idle, most=pool.get_max_size())
        await asyncio.sleep(SAMPLE_EVERY)


def _record(name: str, *, in_use: int, idle: int, most: int) -> None:
    POOL_CONNECTIONS.labels(name, "in_use").set(in_use)
    POOL_CONNECTIONS.labels(name, "idle").set(idle)
    POOL_MAX.labels(name).set(most)
