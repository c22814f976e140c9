"""Relay: copy committed events, in commit order, from the event store to the Redis stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from app import tracing
from app.backoff import Backoff
from app.bus import messages
from app.bus.checkpoints import load_checkpoint, save_checkpoint
from app.bus.infra import POSTGRES_DOWN, REDIS_DOWN, close_connection
from app.db import plain_url
from app.eventstore import NOTIFY_CHANNEL, EventStore, Position, RecordedEvent
from app.redis_line import RedisLine
from app.settings import Settings

log = logging.getLogger(__name__)

RELAY_LOCK = 0x62757372  # "busr": the advisory lock that elects the one active relay
CHECKPOINT = "relay"
BATCH = 500
STANDBY_RETRY = 1.0
HELD_BACK_FIRST = 0.005  # first re-read delay while committed events wait for an older transaction
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0  # as the pools': a PostgreSQL that stops answering is treated as lost
# The relay's session: named, and its commits (the checkpoint after each batch, the polling flag) do not wait
# for the WAL flush. A crash can only take back a checkpoint move, never put it ahead of what was sent: the
# next leader then sends those events again, and every consumer passes over what its checkpoint has.
SESSION = {"application_name": "bookworm-relay", "synchronous_commit": "off"}


class Relay:
    """Leader-elected copier from eventstore.events to `settings.events_stream`."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, event_store: EventStore
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis
        self._store = event_store
        self._line = RedisLine.of(redis)  # None: XADDs go through redis-py (TLS, say)
        self.is_leader = False

    async def run(self) -> None:
        """Stand by until elected, then relay until cancelled; never raise anything else."""
        try:
            await self._run()
        finally:
            if self._line is not None:
                await self._line.aclose()

    async def _run(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self._session()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except POSTGRES_DOWN as exc:
                log.warning("relay: PostgreSQL connection lost (%s); reconnecting", exc)
            except Exception:
                log.exception("relay: unexpected error; restarting")
            self.is_leader = False
            await backoff.wait()

    async def _session(self) -> None:
        """Hold one dedicated connection: try the lock every second, lead once it is ours."""
        assert self._settings.database_url, "the relay needs settings.database_url"
        # Its own session, outside every pool: the advisory lock lives as long as this connection, and no
        # pool's queue (requests, batches) can hold the relay's reads or checkpoint saves back.
        conn = await asyncpg.connect(
            plain_url(self._settings.database_url),
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings=SESSION,
        )
        try:
            # Polling, not an event: the leader may be another process.
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    break
                await asyncio.sleep(STANDBY_RETRY)
            self.is_leader = True
            log.info("relay: elected leader")
            await self._lead(conn)
        finally:
            self.is_leader = False
            # Closing the session releases the advisory lock, so a standby takes over at once.
            await asyncio.shield(close_connection(conn))

    async def _lead(self, conn: asyncpg.Connection) -> None:
        wake = asyncio.Event()

        def hint(*_: Any) -> None:
            wake.set()

        await conn.add_listener(NOTIFY_CHANNEL, hint)
        # A previous leader may have stopped while polling: appends NOTIFY again from here on, and those
        # that did not are waited for like at any stop of polling.
        unnotified: str | None = await _stop_polling(conn)
        polling = False
        checkpoint = await load_checkpoint(conn, CHECKPOINT)
        backoff = Backoff(0.1, 5.0)
        held_back_delay = Backoff(HELD_BACK_FIRST, self._settings.relay_poll_interval)
        while True:
            wake.clear()
            try:
                relayed, count = await self._pump(conn, checkpoint)
                backoff.reset()
            except REDIS_DOWN as exc:
                log.warning("relay: Redis unavailable (%s); retrying", exc)
                await backoff.wait()
                continue
            checkpoint = relayed
            if count == BATCH:
                continue
            if count > 1:
                # Commits came faster than one batch could go out: the worker is busy, so gather what
                # the next moments commit into one batch, and read again then whatever came. Meanwhile
                # appends need not NOTIFY (a notification costs every commit, see migration 0013). A lone
                # event went out at once and the next goes as soon as its NOTIFY comes: at a few changes a
                # second no change waits.
                if not polling:
                    await _start_polling(conn)
                    polling = True
                await asyncio.sleep(self._settings.relay_gather)
                continue
            if polling:
                # Quiet again: appends NOTIFY from now on. Those that saw the relay polling are read
                # once they have ended (below), before the relay waits for a NOTIFY.
                unnotified = await _stop_polling(conn)
                polling = False
                held_back_delay.reset()  # they run for milliseconds: look again soon, then less often
                continue
            if unnotified is not None:
                if await _ended_before(conn, unnotified):
                    # Every append that did not NOTIFY has ended: one more read relays what they committed.
                    unnotified = None
                    continue
                timeout = held_back_delay.next()
            # A NOTIFY only says "look now"; what to relay always comes from the commit-order read.
            # Events whose NOTIFY came while an older transaction still ran are visible only once it
            # ends, and no second NOTIFY will say so: look again soon instead of at the next poll.
            elif await self._store.held_back(checkpoint, conn=conn):
                timeout = held_back_delay.next()
            else:
                held_back_delay.reset()
                timeout = self._settings.relay_poll_interval
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races completion.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    async def _pump(self, conn: asyncpg.Connection, checkpoint: Position) -> tuple[Position, int]:
        """Relay one batch after `checkpoint`; return the new checkpoint and how many events it held."""
        # The relay copies raw fields; consumers decode, and park what they cannot.
        events = await self._store.read_all(checkpoint, limit=BATCH, conn=conn, decode=False)
        if not events:
            return checkpoint, 0
        await self._xadd(events, checkpoint)
        last = events[-1].position
        # Saved on the connection that holds the lock: a relay that lost its session cannot save.
        await save_checkpoint(conn, CHECKPOINT, last)
        return last, len(events)

    async def _xadd(self, events: Sequence[RecordedEvent], prev: Position) -> None:
        # One MULTI/EXEC: a consumer blocked on the stream wakes once the whole batch is there, not per entry.
        served = (event.metadata.get("traceparent") for event in events)
        with tracing.batch_span("relay xadd", served, attributes={"bookworm.events": len(events)}):
            if self._line is not None:
                await self._xadd_on_line(self._line, events, prev)
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                for event in events:
                    pipe.xadd(
                        self._settings.events_stream,
                        messages.encode(event, prev),  # type: ignore[arg-type]
                        maxlen=self._settings.stream_maxlen,
                        approximate=True,
                    )
                    prev = event.position
                await pipe.execute()

    async def _xadd_on_line(self, line: RedisLine, events: Sequence[RecordedEvent], prev: Position) -> None:
        """`_xadd` on the relay's own line to Redis: no redis-py pipeline to build and parse per batch.

        Past `redis_timeout` Redis is taken for unreachable and the connection for lost.
        """
        stream, maxlen = self._settings.events_stream, self._settings.stream_maxlen
        commands: list[tuple[str | int, ...]] = [("MULTI",)]
        for event in events:
            fields = messages.encode(event, prev)
            commands.append(("XADD", stream, "MAXLEN", "~", maxlen, "*", *itertools.chain(*fields.items())))
            prev = event.position
        commands.append(("EXEC",))
        with tracing.redis_span("MULTI XADD EXEC"):
            replies = await line.call_many(*commands, drop_after=self._settings.redis_timeout)
        # EXEC answers with each XADD's reply; a command that failed inside the transaction is one of them.
        for reply in replies[-1]:
            if isinstance(reply, Exception):
                raise reply


# The flag is re-derived by every leader at its start: like every commit of the relay's session, its moves
# need not wait for the WAL flush.
_POLLING = "UPDATE bus.relay_state SET polling = $1 WHERE polling <> $1"
# A transaction id of its own, assigned after every id an append that still saw the relay polling holds.
_NEXT_XID = "SELECT pg_current_xact_id()::text"
# Every transaction with an id below $1 that may write here has ended: the commit horizon is past it (another
# database's transactions, which cannot append here, do not count; migration 0014).
_ENDED_BEFORE = "SELECT (SELECT eventstore.commit_horizon()) >= $1::text::xid8"


async def _start_polling(conn: asyncpg.Connection) -> None:
    """Tell appends that the relay reads again by itself: they stop NOTIFYing it."""
    await conn.execute(_POLLING, True)


async def _stop_polling(conn: asyncpg.Connection) -> str:
    """Tell appends to NOTIFY again; return a transaction id above that of every append that did not.

    An append reads the flag after its transaction id was assigned (eventstore.wake_relay), so one that
    still saw the relay polling got its id before the flag's reset committed, and so before the id taken
    here, in a transaction of its own after that commit. (A snapshot's xmax would not do: it is the latest
    completed id + 1, and an append's id can be above it while it runs.)
    """
    await conn.execute(_POLLING, False)
    xid: str = await conn.fetchval(_NEXT_XID)
    return xid


async def _ended_before(conn: asyncpg.Connection, xid: str) -> bool:
    """Tell whether every transaction of this database with an id below `xid` has ended (committed or not)."""
    ended: bool = await conn.fetchval(_ENDED_BEFORE, xid)
    return ended
