"""Leases in bus.leases: one active owner per name, renewed in the background, fenced at commit."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

import asyncpg

log = logging.getLogger(__name__)

_ACQUIRE = """
INSERT INTO bus.leases (name, owner, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE bus.leases.owner = EXCLUDED.owner OR bus.leases.expires_at < clock_timestamp()
RETURNING owner
"""
_RENEW = """
UPDATE bus.leases SET expires_at = clock_timestamp() + make_interval(secs => $3)
WHERE name = $1 AND owner = $2 AND expires_at > clock_timestamp()
RETURNING owner
"""
# FOR SHARE: a standby's takeover waits for this batch to commit, and then sees the lease renewed or not.
_FENCE = """
SELECT 1 FROM bus.leases WHERE name = $1 AND owner = $2 AND expires_at > clock_timestamp() FOR SHARE
"""


class LeaseLost(Exception):
    """The lease expired or another owner took it: stop acting as the active consumer."""


def new_owner() -> str:
    """Return a lease owner id unique to this process and instance (host:pid:random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """A named lease held by `owner` for `ttl` seconds at a time."""

    def __init__(self, pool: asyncpg.Pool, name: str, ttl: float, owner: str | None = None) -> None:
        self.pool = pool
        self.name = name
        self.ttl = ttl
        self.owner = owner or new_owner()

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired, or already ours."""
        return await self.pool.fetchval(_ACQUIRE, self.name, self.owner, self.ttl) is not None

    async def renew(self) -> bool:
        return await self.pool.fetchval(_RENEW, self.name, self.owner, self.ttl) is not None

    async def release(self) -> None:
        """Give the lease up now so that a standby need not wait for it to expire."""
        await self.pool.execute(
            "DELETE FROM bus.leases WHERE name = $1 AND owner = $2", self.name, self.owner
        )

    async def fence(self, conn: asyncpg.Connection) -> None:
        """Inside a transaction: raise LeaseLost unless the lease is still ours and unexpired."""
        if await conn.fetchval(_FENCE, self.name, self.owner) is None:
            raise LeaseLost(f"lease {self.name} is no longer held by {self.owner}")

    async def keep(self, lost: asyncio.Event) -> None:
        """Renew every ttl/3 until cancelled; set `lost` once the lease is gone or renewals keep failing."""
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if not await self.renew():
                    break
                renewed_at = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease %s: renewal failed (%s)", self.name, exc)
                if loop.time() - renewed_at >= self.ttl:
                    break
        log.warning("lease %s: lost by %s", self.name, self.owner)
        lost.set()
