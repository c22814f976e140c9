"""Leases in bus.leases: one active owner per name, renewed by the LeaseKeeper, fenced at commit.

Row locks on a lease (PostgreSQL's conflict table: FOR KEY SHARE conflicts only with FOR UPDATE):
- a batch fences with FOR KEY SHARE until it commits;
- renewal UPDATEs `expires_at`, no key column, so it takes FOR NO KEY UPDATE: a long batch never holds it
  back, and the holder keeps its lease however long the batch runs;
- a takeover by another owner first takes FOR UPDATE, which waits for the holder's batch in flight to
  commit, and only then looks at expiry. The upsert alone would not wait: INSERT … ON CONFLICT DO UPDATE
  that changes no key column locks the row FOR NO KEY UPDATE too.
"""

from __future__ import annotations

import os
import secrets
import socket

import asyncpg

_ACQUIRE = """
INSERT INTO bus.leases (name, owner, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE bus.leases.owner = EXCLUDED.owner OR bus.leases.expires_at < clock_timestamp()
RETURNING owner
"""
# Unlocked: a standby polling a lease that is held and renewed never queues behind the holder's batches.
_HELD_BY_ANOTHER = """
SELECT EXISTS (SELECT FROM bus.leases WHERE name = $1 AND owner <> $2 AND expires_at > clock_timestamp())
"""
_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"  # milliseconds, this transaction only
_LOCK = "SELECT FROM bus.leases WHERE name = $1 FOR UPDATE"
_FENCE = """
SELECT {then} FROM bus.leases WHERE name = $1 AND owner = $2 AND expires_at > clock_timestamp() FOR KEY SHARE
"""
# The fence of a transaction whose commit need not wait for the WAL flush: SET LOCAL, without a round trip.
_FENCE_DURABLE = _FENCE.format(then="1")
_FENCE_UNSYNCED = _FENCE.format(then="set_config('synchronous_commit', 'off', true)")


class LeaseLost(Exception):
    """The lease expired or another owner took it: stop acting as the active consumer."""


def new_owner() -> str:
    """Return a lease owner id unique to this process and instance (host:pid:random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """A named lease held by `owner` for `ttl` seconds at a time; a LeaseKeeper renews it."""

    def __init__(self, pool: asyncpg.Pool, name: str, ttl: float, owner: str | None = None) -> None:
        self.pool = pool
        self.name = name
        self.ttl = ttl
        self.owner = owner or new_owner()

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired, or already ours.

        Taking it from another owner waits (at most `ttl`) for that owner's batch in flight to commit,
        then takes it only if it is still expired.
        """
        async with self.pool.acquire() as conn:
            if await conn.fetchval(_HELD_BY_ANOTHER, self.name, self.owner):
                return False
            try:
                async with conn.transaction():
                    await conn.execute(_LOCK_TIMEOUT, f"{self.ttl * 1000:.0f}")
                    await conn.execute(_LOCK, self.name)
                    return await conn.fetchval(_ACQUIRE, self.name, self.owner, self.ttl) is not None
            except asyncpg.LockNotAvailableError:
                return False  # the holder's batch still runs; the next poll looks again

    async def release(self) -> None:
        """Give the lease up now so that a standby need not wait for it to expire."""
        await self.pool.execute(
            "DELETE FROM bus.leases WHERE name = $1 AND owner = $2", self.name, self.owner
        )

    async def fence(self, conn: asyncpg.Connection, *, durable: bool = True) -> None:
        """Inside a transaction: raise LeaseLost unless the lease is still ours and unexpired.

        With `durable` False, the transaction's commit then does not wait for the WAL flush.
        """
        if await conn.fetchval(_FENCE_DURABLE if durable else _FENCE_UNSYNCED, self.name, self.owner) is None:
            raise LeaseLost(f"lease {self.name} is no longer held by {self.owner}")
