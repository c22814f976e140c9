"""Scenario: the API processes are saturated with the most expensive queries the limits allow while
mutations flow at a steady rate. The event flow must not notice: every change reaches a live subscriber
fast (commit -> subscriber p99 <= 250 ms), a subscriber that keeps resuming gets every change once, no
consumer loses its lease, and `bookworm verify` passes afterwards.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.eventstore import Position
from app.settings import Settings
from tests.abuse.harness import percentile
from tests.faults.cluster import Cluster, admin_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import Load, Watcher, check_exactly_once, logged_changes, make_refs, wait_received

LIMITS = Settings()
# 100 books with every field and their category, publisher and authors: 100 x (1 + edges 1 + node
# (1 + 1 + 1 + 5 authors)) = 1,000, exactly the most a query may cost by default.
HEAVY = """{ books(first: 100) { edges { node {
  id name description price priceSale status averageRating totalReviews version createdAt updatedAt
  category { id name } publisher { id name } authors { id name } } } } }"""
HEAVY_COST = 1_000
HEAVY_CLIENTS = 12  # closed loop, each from its own address: more than the API processes' cores
MUTATION_RATE = 30.0
SECONDS = 15.0
CUT_EVERY = 3.0  # the resuming subscriber is cut off this often and resumes with `after:`
P99_LIMIT_MS = 250.0

_LEASES = "SELECT name, owner FROM bus.leases ORDER BY name"
# Each catalog change after a position: its event's commit-time clock, and when its projection applied it.
_COMMITTED = """
SELECT e.transaction_id::text::bigint, e.global_position, extract(epoch FROM e.recorded_at),
       extract(epoch FROM c.recorded_at)
FROM eventstore.events e
JOIN read.changes c ON c.topic = 'catalog' AND c.transaction_id = e.transaction_id::text::bigint
                   AND c.global_position = e.global_position
WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
"""


@dataclass
class TimedWatcher(Watcher):
    """A Watcher that also notes when (wall clock) each change arrived."""

    arrived: dict[str, float] = field(default_factory=dict)

    def _take(self, payload: dict[str, Any]) -> None:
        super()._take(payload)
        self.arrived.setdefault(self.received[-1][0], time.time())


@dataclass
class Saturation:
    """Closed-loop clients that each send HEAVY as soon as the last answer came."""

    url: str
    statuses: dict[str, int] = field(default_factory=dict)
    answered: int = 0

    async def run(self, clients: int) -> None:
        await asyncio.gather(*(self._client(n) for n in range(clients)))

    async def _client(self, n: int) -> None:
        # A client per address: each has its own budget and its own share of turns, as many users would.
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{n + 1}")
        async with httpx.AsyncClient(base_url=self.url, transport=transport, timeout=60) as http:
            while True:
                response = await http.post("/graphql", json={"query": HEAVY})
                outcome = str(response.status_code)
                if response.status_code == 200:
                    body = response.json()
                    assert "errors" not in body, body["errors"]
                    assert body["extensions"]["cost"]["requestedQueryCost"] == HEAVY_COST
                    self.answered += 1
                self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


async def cut_now_and_then(watcher: Watcher, every: float, cuts: list[float]) -> None:
    """Run `watcher`, cutting its connection every `every` seconds; it resumes after its last change."""
    while True:
        following = asyncio.create_task(watcher.run())
        try:
            await asyncio.sleep(every)
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
        cuts.append(time.monotonic())


async def delays_ms(cluster: Cluster, watcher: TimedWatcher, after: str) -> tuple[list[float], list[float]]:
    """For every change the watcher received: commit -> projection applied, and commit -> arrival."""
    start = Position.parse(after)
    async with cluster.connected() as conn:
        rows = await conn.fetch(_COMMITTED, str(start.transaction_id), start.global_position)
    recorded = {str(Position(r[0], r[1])): (float(r[2]), float(r[3])) for r in rows}
    seen = [p for p in watcher.arrived if p in recorded]
    projected = [(recorded[p][1] - recorded[p][0]) * 1000 for p in seen]
    return projected, [(watcher.arrived[p] - recorded[p][0]) * 1000 for p in seen]


async def test_saturated_api_never_slows_the_event_flow(cluster: Cluster, profile: Profile) -> None:
    # The supervisor as users run it: API processes per core and one worker process.
    api = cluster.api("serve", workers=True, BOOKWORM_API_PROCESSES="0")
    seeding = await cluster.cli("seed", "--books", "150")
    assert seeding.status == 0, seeding.stderr
    await cluster.caught_up()
    token = admin_token()
    refs = await make_refs(api.url, token)
    await cluster.caught_up()
    async with cluster.connected() as conn:
        leases_before = [tuple(r) for r in await conn.fetch(_LEASES)]

    live = TimedWatcher([api.ws_url], after=refs.position)
    resuming = Watcher([api.ws_url], after=refs.position)
    cuts: list[float] = []
    watching = [
        asyncio.create_task(live.run()),
        asyncio.create_task(cut_now_and_then(resuming, CUT_EVERY, cuts)),
    ]
    await asyncio.sleep(1.0)  # both subscribed before the load starts
    heavy = Saturation(api.url)
    saturating = asyncio.create_task(heavy.run(HEAVY_CLIENTS))
    await asyncio.sleep(2.0)  # saturated before the mutations start
    load = Load([api.url], token, refs, MUTATION_RATE, clients=8)
    await load.run(SECONDS * (2 if profile.soak else 1))
    saturating.cancel()
    await asyncio.gather(saturating, return_exceptions=True)

    await cluster.caught_up()
    database_url = cluster.settings.database_url or ""
    expected = await logged_changes(database_url, refs.position)
    await wait_received(live, len(expected))
    await wait_received(resuming, len(expected))
    for task in watching:
        task.cancel()
    await asyncio.gather(*watching, return_exceptions=True)
    async with cluster.connected() as conn:
        leases_after = [tuple(r) for r in await conn.fetch(_LEASES)]
    projected, latencies = await delays_ms(cluster, live, refs.position)
    verified = await cluster.verify()

    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    projected_p50, projected_p99 = percentile(projected, 0.5), percentile(projected, 0.99)
    record(
        "isolation: saturated API",
        heavy_queries=f"{heavy.answered} answered, statuses {heavy.statuses}",
        mutations=load.summary(),
        commit_to_subscriber=f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms "
        f"over {len(latencies)} changes (of which commit -> projected p50 {projected_p50:.0f} ms, "
        f"p99 {projected_p99:.0f} ms)",
        resumes=f"{len(cuts)} cuts, {resuming.reconnects} failed connections",
        leases=f"{len(leases_before)}, same owners after: {leases_before == leases_after}",
        events_verified=verified,
    )
    assert load.failures() == {}, load.outcomes
    assert heavy.answered > 0 and set(heavy.statuses) <= {"200", "429", "503"}, heavy.statuses
    check_exactly_once(live.received, expected)
    check_exactly_once(resuming.received, expected)
    assert leases_before and leases_after == leases_before, "a consumer lost its lease"
    assert len(latencies) == len(expected)
    assert p99 <= P99_LIMIT_MS, f"commit -> subscriber p99 {p99:.0f} ms"
