"""The composition root against real servers: the workers never share a pool with the API."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable

import asyncpg

from app.bootstrap import container, worker_process
from app.settings import Settings
from tests.integration.bus_support import wait_until

# Every connection to the test's database but the one asking.
_CONNECTIONS = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def test_workers_beside_the_api_get_a_pool_of_their_own(
    make_settings: Callable[[], Settings],
) -> None:
    settings = dataclasses.replace(make_settings(), db_pool_size=3, worker_pool_size=5)
    async with container(settings, workers=True) as built:
        assert built.workers is not None
        assert built.workers.pool is not built.pool
        assert built.pool.get_max_size() == 3
        assert built.workers.pool.get_max_size() == 5


async def test_a_worker_process_opens_no_api_pool(make_settings: Callable[[], Settings]) -> None:
    settings = dataclasses.replace(make_settings(), worker_pool_size=5)
    async with worker_process(settings) as workers:
        assert workers.pool.get_max_size() == 5
        admin = await asyncpg.connect(settings.database_url)
        try:

            async def only_the_workers_connected() -> bool:
                # The workers' pool, the lease keeper's connection and the relay's session; nothing else.
                connected: int = await admin.fetchval(_CONNECTIONS)
                return workers.relay.is_leader and connected == workers.pool.get_size() + 2

            await wait_until(only_the_workers_connected, what="the workers' connections alone")
        finally:
            await admin.close()


async def test_a_worker_process_exempts_its_startup_objects_from_collection(
    make_settings: Callable[[], Settings],
) -> None:
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        async with worker_process(make_settings()):
            # As an API process's (app/memory.py): a full collection then scans what the batches made since.
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
