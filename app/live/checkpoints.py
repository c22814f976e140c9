"""Hear every projection checkpoint move: PostgreSQL NOTIFY, on one LISTEN connection per process.

Migration 0008's trigger on read.projections notifies CHANNEL with "<name> <transaction_id>
<global_position>" inside the transaction (or single statement) that moves a checkpoint forward, so
the notice arrives when, and only when, the move commits. While the connection is down notices are
lost: each (re)connection therefore reads every checkpoint once, right after LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable

import asyncpg

from app.aio import cancel_and_wait
from app.backoff import Backoff
from app.db import plain_url
from app.eventstore.position import Position

log = logging.getLogger(__name__)

CHANNEL = "bookworm_checkpoints"  # the channel migration 0008's trigger notifies
CONNECT_TIMEOUT = 5.0
HEALTH_INTERVAL = 15.0  # how often an idle connection is probed: finds one cut off without a FIN
RETRY_FIRST, RETRY_CAP = 0.5, 5.0  # seconds between reconnection attempts

_NOTICE = re.compile(r"([^ ]{1,63}) ([0-9]{1,19}) ([0-9]{1,19})", re.ASCII)
_ALL = "SELECT name, transaction_id, global_position FROM read.projections"

OnMove = Callable[[str, Position], None]


def parse_notice(payload: str) -> tuple[str, Position] | None:
    """Return (projection, checkpoint) from a notice's payload, or None when it is not one."""
    match = _NOTICE.fullmatch(payload)
    if match is None:
        return None
    name, transaction_id, global_position = match.groups()
    return name, Position(int(transaction_id), int(global_position))


class CheckpointListener:
    """Keep one LISTEN connection open (reconnecting on loss) and report each checkpoint to `on_move`."""

    def __init__(
        self, database_url: str, on_move: OnMove, *, health_interval: float = HEALTH_INTERVAL
    ) -> None:
        self._url = plain_url(database_url)
        self._on_move = on_move
        self._health_interval = health_interval
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_malformed = False
        self._down_logged = False
        self.connections = 0  # how many times a connection started listening (tests watch reconnects)

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def server_pid(self) -> int | None:
        """The PostgreSQL backend of the listening connection (None while there is none)."""
        return self._conn.get_server_pid() if self.listening and self._conn is not None else None

    async def start(self) -> None:
        """Listen now when PostgreSQL answers, else keep trying in the background."""
        await self._open()
        self._task = asyncio.create_task(self._run(), name="checkpoint-listener")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        await self._drop()

    async def _run(self) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        while True:
            if self._conn is None:
                await backoff.wait()
                await self._open()
                continue
            backoff.reset()
            await self._until_lost(self._conn)
            await self._drop()

    async def _open(self) -> None:
        try:
            conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # any failure means "not listening yet"; the loop tries again
            self._cannot_listen(exc)
            return
        try:
            await conn.add_listener(CHANNEL, self._heard)
            # After LISTEN: a move committed from here on is read here or notified; none is missed.
            rows = await conn.fetch(_ALL, timeout=CONNECT_TIMEOUT)
        except BaseException as exc:  # a cancellation too: never leave the connection open behind
            conn.terminate()
            if not isinstance(exc, Exception):
                raise
            self._cannot_listen(exc)
            return
        if self._down_logged:
            log.info("listening for checkpoint notices again")
            self._down_logged = False
        self._conn = conn
        self.connections += 1
        for row in rows:
            self._on_move(row[0], Position(row[1], row[2]))

    def _cannot_listen(self, exc: Exception) -> None:
        if not self._down_logged:  # once per outage: the loop retries every few seconds
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("cannot listen for checkpoint notices (retrying): %.200s", reason)
            self._down_logged = True

    async def _until_lost(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await lost.wait()
                return
            try:
                await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # a probe that fails for any reason means the connection is unusable
                log.warning("checkpoint notice connection lost (reconnecting): %s", type(exc).__name__)
                return

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None:
            if not self._warned_malformed:
                log.warning("ignoring a malformed checkpoint notice (logged once): %r", payload[:80])
                self._warned_malformed = True
            return
        self._on_move(*notice)
