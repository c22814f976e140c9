"""Figures read from PostgreSQL when /metrics is scraped: how far behind each checkpoint is, dead letters.

Read at scrape time rather than pushed by the worker: the figures are then right wherever the workers run
(in `serve`, in a `bookworm worker` elsewhere, or nowhere), and a worker that hangs shows a lag that grows
instead of the last value it wrote. One statement reads every checkpoint (the relay's, each process
manager's, each projection's) with the visibility rule of every commit-order reader, as `bookworm
projections status` does, but bounded: events behind are counted up to LAG_COUNT_CAP, and the seconds are
the age of the oldest event not yet processed, found through the commit-order index. A process reads at
most once a second, whatever the scrape rate, and gives up after TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from app.bus.relay import CHECKPOINT as RELAY
from app.db import is_postgres_down

log = logging.getLogger(__name__)

MAX_AGE = 1.0  # seconds a reading serves every scrape of this process
TIMEOUT = 1.0  # seconds to get a connection, and again to run the statement
LAG_COUNT_CAP = 100_000  # events behind are counted up to this many; past it the figure stays here

_BEHIND = """
(SELECT {what} FROM eventstore.events e
 WHERE e.transaction_id < horizon.xmin
   AND (e.transaction_id, e.global_position) > (c.transaction_id::text::xid8, c.global_position)
 {rest})
"""
_LAGS = f"""
WITH horizon AS MATERIALIZED (SELECT eventstore.commit_horizon() AS xmin),
checkpoints AS (
    SELECT CASE WHEN name = $2 THEN 'relay' ELSE 'process' END AS kind, name, transaction_id, global_position
    FROM bus.checkpoints
    UNION ALL
    -- A relay that has not saved a checkpoint yet is at the start: every event is behind it.
    SELECT 'relay', $2, 0, 0 WHERE NOT EXISTS (SELECT FROM bus.checkpoints WHERE name = $2)
    UNION ALL
    SELECT 'projection', name, transaction_id, global_position FROM read.projections
)
SELECT c.kind, c.name,
    (SELECT count(*) FROM {_BEHIND.format(what="1", rest="LIMIT $1")} AS behind) AS events,
    {
    _BEHIND.format(
        what="extract(epoch FROM clock_timestamp() - e.recorded_at)::float8",
        rest="ORDER BY e.transaction_id, e.global_position LIMIT 1",
    )
} AS seconds
FROM checkpoints c CROSS JOIN horizon
ORDER BY c.kind, c.name
"""
_DEAD_LETTERS = "SELECT consumer, count(*) FROM bus.dead_letters WHERE resolved_at IS NULL GROUP BY consumer"


class DatabaseFigures:
    """The lag and dead-letter figures of the last reading, read again once they are MAX_AGE old."""

    def __init__(
        self, *, max_age: float = MAX_AGE, timeout: float = TIMEOUT, count_cap: int = LAG_COUNT_CAP
    ) -> None:
        self.max_age, self.timeout, self.count_cap = max_age, timeout, count_cap
        self._families: list[Metric] = []
        self._read_at = -max_age
        self._reading = asyncio.Lock()  # scrapes that arrive together share one reading

    async def read(self, pool: asyncpg.Pool) -> list[Metric]:
        """Return the figures, reading them from PostgreSQL when the last reading is too old."""
        async with self._reading:
            if time.monotonic() - self._read_at >= self.max_age:
                self._families = await self._query(pool)
                self._read_at = time.monotonic()
        return self._families

    async def _query(self, pool: asyncpg.Pool) -> list[Metric]:
        try:
            async with pool.acquire(timeout=self.timeout) as conn:
                lags = await conn.fetch(_LAGS, self.count_cap, RELAY, timeout=self.timeout)
                parked = await conn.fetch(_DEAD_LETTERS, timeout=self.timeout)
        except Exception as error:
            if not (isinstance(error, TimeoutError | asyncpg.PostgresError) or is_postgres_down(error)):
                raise
            log.warning("metrics: cannot read the lag figures from PostgreSQL (%s)", type(error).__name__)
            return [_up(False)]
        return [_up(True), *families(lags, parked, self.count_cap)]


def families(lags: Sequence[asyncpg.Record], parked: Sequence[asyncpg.Record], cap: int) -> list[Metric]:
    """Turn the rows of both statements into metric families."""
    events = GaugeMetricFamily(
        "bookworm_lag_events",
        f"Committed events a checkpoint has not reached yet (counted up to {cap}), by kind "
        "(relay, projection, process) and consumer.",
        labels=["kind", "consumer"],
    )
    seconds = GaugeMetricFamily(
        "bookworm_lag_seconds",
        "Age of the oldest committed event a checkpoint has not reached yet (0: none), by kind and consumer.",
        labels=["kind", "consumer"],
    )
    for row in lags:
        events.add_metric([row["kind"], row["name"]], row["events"])
        seconds.add_metric([row["kind"], row["name"]], max(row["seconds"] or 0.0, 0.0))
    dead = GaugeMetricFamily(
        "bookworm_dead_letters", "Unresolved dead letters (parked events), by consumer.", labels=["consumer"]
    )
    counts = {row["name"]: 0 for row in lags if row["kind"] != "relay"}
    counts.update((row["consumer"], row["count"]) for row in parked)
    for consumer, count in sorted(counts.items()):
        dead.add_metric([consumer], count)
    return [events, seconds, dead]


def _up(ok: bool) -> Metric:
    up = GaugeMetricFamily(
        "bookworm_database_figures_up",
        "1 when this scrape's lag and dead-letter figures were read from PostgreSQL, 0 when it did not "
        "answer in time (the figures are then missing).",
    )
    up.add_metric([], 1.0 if ok else 0.0)
    return up
