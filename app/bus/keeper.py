"""LeaseKeeper: renews every lease of this process from a thread, event loop and connection of its own.

Nothing the process does can hold a renewal back: not batches (the fence takes FOR KEY SHARE, which the
renewal's UPDATE does not wait for), not requests or batches queueing for pool connections (the keeper has
its own connection), and not a CPU-busy event loop (the keeper's loop runs in its own thread, which the
interpreter switches to every few milliseconds). One statement renews all leases every ttl/3. A runner
learns that its lease is gone through an asyncio.Event the keeper sets on the runner's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

import asyncpg

from app.backoff import Backoff
from app.bus.infra import close_connection
from app.bus.lease import Lease
from app.db import plain_url

log = logging.getLogger(__name__)

_RENEW = """
UPDATE bus.leases AS lease SET expires_at = clock_timestamp() + make_interval(secs => $3)
FROM unnest($1::text[], $2::text[]) AS held (name, owner)
WHERE lease.name = held.name AND lease.owner = held.owner AND lease.expires_at > clock_timestamp()
RETURNING lease.name, lease.owner
"""
STOP_TIMEOUT = 5.0  # seconds stop() waits for the thread; it is a daemon, so a stuck one dies with us


@dataclass(eq=False)
class _Held:
    """One lease being renewed, and how to tell its runner that it is gone."""

    name: str
    owner: str
    loop: asyncio.AbstractEventLoop
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    # time.monotonic() when the last successful renewal was sent: the lease lasts at least ttl past it.
    renewed_at: float = field(default_factory=time.monotonic)

    def signal(self) -> None:
        """Set `lost` on the runner's loop, from any thread."""
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is left to tell
            self.loop.call_soon_threadsafe(self.lost.set)


class LeaseKeeper:
    """Renews the leases this process holds, every ttl/3, until stopped; one per process."""

    def __init__(self, database_url: str, ttl: float) -> None:
        self._url = plain_url(database_url)
        self._ttl = ttl
        # Every wait is bounded by one renewal interval: a renewal that cannot finish in it is retried on a
        # new connection, and two more tries remain before the lease could expire.
        self._interval = ttl / 3
        self._held: dict[tuple[str, str], _Held] = {}
        self._lock = threading.Lock()  # guards _held: runners change it, the keeper's thread reads it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = asyncio.Event()  # set on the keeper's loop only

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the keeper's thread, unless it runs already."""
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="bookworm-lease-keeper", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop renewing and close the connection; leases still held then expire on their own."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(thread.join, STOP_TIMEOUT)

    def hold(self, lease: Lease) -> asyncio.Event:
        """Renew `lease` (just acquired) from now on; return an event set on this loop once it is lost."""
        if not self.running:
            raise RuntimeError("the lease keeper is not running")
        held = _Held(lease.name, lease.owner, asyncio.get_running_loop())
        with self._lock:
            self._held[(held.name, held.owner)] = held
        return held.lost

    def drop(self, lease: Lease) -> None:
        """Stop renewing `lease` (before releasing it, or when its runner stops leading)."""
        with self._lock:
            self._held.pop((lease.name, lease.owner), None)

    def _main(self) -> None:
        assert self._loop is not None
        try:
            self._loop.run_until_complete(self._run())
        except BaseException:
            log.exception("lease keeper: stopped by an unexpected error; leases will expire")
        finally:
            self._loop.close()

    async def _run(self) -> None:
        conn: asyncpg.Connection | None = None
        backoff = Backoff(0.1, self._interval)
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    conn = conn or await self._connect()
                    await self._renew(conn, started)
                    backoff.reset()
                    delay = self._interval - (time.monotonic() - started)
                except Exception as exc:  # whatever went wrong, the keeper must keep going
                    log.warning("lease keeper: renewal failed (%s); reconnecting", exc)
                    if conn is not None:
                        await close_connection(conn, self._interval)
                    conn = None
                    self._lose_overdue()
                    delay = backoff.next()
                await self._sleep(delay)
        finally:
            if conn is not None:
                await close_connection(conn, self._interval)

    async def _connect(self) -> asyncpg.Connection:
        timeout_ms = str(int(self._interval * 1000))
        return await asyncpg.connect(
            self._url,
            timeout=self._interval,
            command_timeout=self._interval,
            server_settings={
                "application_name": "bookworm-lease-keeper",
                "statement_timeout": timeout_ms,
                "lock_timeout": timeout_ms,
            },
        )

    async def _renew(self, conn: asyncpg.Connection, sent_at: float) -> None:
        """Renew every held lease in one statement; tell the runners of those no longer held."""
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        names, owners = [h.name for h in held], [h.owner for h in held]
        rows = await conn.fetch(_RENEW, names, owners, self._ttl, timeout=self._interval)
        renewed = {(row["name"], row["owner"]) for row in rows}
        for lease in held:
            if (lease.name, lease.owner) in renewed:
                lease.renewed_at = sent_at
            else:
                self._lose(lease)

    def _lose_overdue(self) -> None:
        """After a failed renewal: give up the leases not renewed for a whole ttl (they have expired)."""
        now = time.monotonic()
        with self._lock:
            held = list(self._held.values())
        for lease in held:
            if now - lease.renewed_at >= self._ttl:
                self._lose(lease)

    def _lose(self, lease: _Held) -> None:
        with self._lock:
            # A runner that dropped the lease (and perhaps took it again) meanwhile is told nothing.
            if self._held.get((lease.name, lease.owner)) is not lease:
                return
            del self._held[(lease.name, lease.owner)]
        log.warning("lease %s: lost by %s", lease.name, lease.owner)
        lease.signal()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._stopping.wait()
