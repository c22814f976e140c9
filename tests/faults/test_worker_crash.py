"""Scenario 1: the worker process (relay and every consumer) is SIGKILLed at random moments under load."""

from __future__ import annotations

import asyncio
import random

from tests.faults.cluster import Cluster, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import (
    Load,
    Watcher,
    check_watched,
    make_refs,
)


async def test_sigkilled_worker_loses_skips_and_repeats_nothing(cluster: Cluster, profile: Profile) -> None:
    # Two API processes: one serves about 170 mutations/s on this 2-core machine, the soak asks 200.
    apis, worker = [cluster.api("api-1"), cluster.api("api-2")], cluster.worker()
    token = admin_token()
    refs = await make_refs(apis[0].url, token)
    watcher = Watcher([apis[1].ws_url], after=refs.position)
    watching = asyncio.create_task(watcher.run())
    load = Load([api.url for api in apis], token, refs, profile.rate, profile.clients)
    loading = asyncio.create_task(load.run(profile.seconds))

    gap = profile.seconds / (profile.kills + 1)
    for kill in range(1, profile.kills + 1):
        await asyncio.sleep(random.uniform(0.5, 1.5) * gap)  # random moments, spread over the load
        worker.kill()
        await asyncio.sleep(random.uniform(0.0, 1.0))
        worker = cluster.worker(f"worker-{kill}")
    await loading
    recovered = await cluster.caught_up()
    verified = await cluster.verify()

    expected = await check_watched(cluster.settings.database_url or "", watcher, refs.position)
    watching.cancel()
    assert load.failures() == {}, load.outcomes
    assert load.succeeded == int(profile.rate * profile.seconds)
    written = await cluster.count("SELECT count(*) FROM eventstore.events")
    record(
        "1 worker SIGKILL",
        mutations=load.summary(),
        kills=profile.kills,
        events_written=written,
        events_verified=verified,
        changes_received=f"{len(watcher.received)} of {len(expected)}",
        caught_up_after_load=f"{recovered:.2f} s",
    )
