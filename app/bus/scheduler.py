"""Durable due-time messages in bus.scheduled (saga timeouts, periodic jobs), claimed with SKIP LOCKED.

A claim is a short committed UPDATE that moves the message's due time a lease ahead; the handler then
runs outside any transaction of the scheduler's. Holding the row lock while the handler ran would keep
a transaction open, and an open transaction holds back every reader of all events (they read below the
oldest running transaction: docs/architecture.md, "Event store"), so a slow handler would stall the
relay and subscriptions.
A process that dies mid-handler leaves the message due again when the lease ends: handlers must be
idempotent (at-least-once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from app.backoff import nth_delay
from app.bus.applier import describe
from app.bus.infra import POSTGRES_DOWN

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
PERIODIC_KEY = "every"

_SCHEDULE = """
INSERT INTO bus.scheduled (kind, key, due_at, payload) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (kind, key) DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, attempts = 0
"""
_CLAIM = """
UPDATE bus.scheduled SET due_at = clock_timestamp() + make_interval(secs => $2)
WHERE id = (
    SELECT id FROM bus.scheduled WHERE due_at <= clock_timestamp() AND kind = ANY($1::text[])
    ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, key, payload::text AS payload, attempts, due_at
"""
# Each follow-up names the lease's due time: a message the handler (or anyone) moved meanwhile, with
# schedule(), is theirs now and stays as they left it.
_RESCHEDULE = """
UPDATE bus.scheduled SET due_at = clock_timestamp() + make_interval(secs => $2), attempts = $3
WHERE id = $1 AND due_at = $4
"""
_DONE = "DELETE FROM bus.scheduled WHERE id = $1 AND due_at = $2"


class Scheduler:
    """Runs each due message once, across every process polling the same table."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retry_first: float = 1.0,
        retry_cap: float = 300.0,
        lease: float = 60.0,
    ) -> None:
        self._pool = pool
        self._retry_first = retry_first
        self._retry_cap = retry_cap
        self._lease = lease
        self._periodic: dict[str, float] = {}

    async def schedule(
        self,
        conn: asyncpg.Connection,
        kind: str,
        key: str,
        due_at: dt.datetime,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Schedule (or move) message (kind, key) for `due_at`, inside the caller's transaction."""
        await conn.execute(_SCHEDULE, kind, key, due_at, json.dumps(dict(payload or {})))

    async def cancel(self, conn: asyncpg.Connection, kind: str, key: str) -> bool:
        """Drop message (kind, key); return whether there was one."""
        deleted = await conn.fetchval(
            "DELETE FROM bus.scheduled WHERE kind = $1 AND key = $2 RETURNING id", kind, key
        )
        return deleted is not None

    def every(self, kind: str, seconds: float) -> None:
        """Run `kind` every `seconds` (once across all processes), starting as soon as run() starts."""
        self._periodic[kind] = seconds

    async def run(self, handlers: Mapping[str, Handler], *, poll: float = 1.0) -> None:
        """Run due messages with their kind's handler until cancelled."""
        seeded = False
        while True:
            try:
                if not seeded:
                    await self._seed_periodic()
                    seeded = True
                if await self.run_due(handlers):
                    continue
            except POSTGRES_DOWN as exc:
                log.warning("scheduler: PostgreSQL unavailable (%s)", exc)
            await asyncio.sleep(poll)

    async def run_due(self, handlers: Mapping[str, Handler]) -> int:
        """Run every message due now; return how many ran (successfully or not)."""
        count = 0
        while await self._run_one(handlers):
            count += 1
        return count

    async def _seed_periodic(self) -> None:
        for kind in self._periodic:
            await self._pool.execute(
                "INSERT INTO bus.scheduled (kind, key, due_at) VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
                kind,
                PERIODIC_KEY,
            )

    async def _run_one(self, handlers: Mapping[str, Handler]) -> bool:
        row = await self._pool.fetchrow(_CLAIM, list(handlers), self._lease)
        if row is None:
            return False
        kind, attempts, leased = row["kind"], row["attempts"], row["due_at"]
        try:
            await handlers[kind](json.loads(row["payload"]))
        except Exception as exc:
            backoff = nth_delay(self._retry_first, self._retry_cap, attempts)
            delay = min(backoff, self._periodic.get(kind, 1e9))
            log.warning(
                "scheduler: %s/%s failed (attempt %d): %s", kind, row["key"], attempts + 1, describe(exc)
            )
            await self._pool.execute(_RESCHEDULE, row["id"], delay, attempts + 1, leased)
            return True
        if kind in self._periodic and row["key"] == PERIODIC_KEY:
            await self._pool.execute(_RESCHEDULE, row["id"], self._periodic[kind], 0, leased)
        else:
            await self._pool.execute(_DONE, row["id"], leased)
        return True
