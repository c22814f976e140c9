"""Our broadcaster backend on Redis pub/sub: reconnects by itself and says when messages may be lost.

broadcaster 0.3.1's bundled Redis backends fail with redis-py 8 (DESIGN §6). This one owns a single
RESP2 pub/sub connection read by one task, resubscribes every channel after a drop, and then puts a
CATCH_UP message on each channel: what was published during the outage is gone from pub/sub, and
subscribers must catch up from read.changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.aio import cancel_and_wait

log = logging.getLogger(__name__)

CATCH_UP = "catch-up"
"""Message meaning "notices on this channel may have been lost": subscribers re-read read.changes."""

_FIRST_RETRY_DELAY = 0.1
_PUBLISH_TIMEOUT = 2.0  # a PUBLISH takes well under a millisecond; past this Redis is frozen or cut off
_EVENT_BUFFER = 10_000


class BackendUnavailable(Exception):
    """Redis cannot be reached for live notices."""


class RedisPubSubBackend(BroadcastBackend):
    """Broadcaster backend on one Redis pub/sub connection that survives drops and restarts."""

    def __init__(
        self,
        url: str,
        *,
        health_interval: float = 15.0,
        max_retry_delay: float = 5.0,
        confirm_timeout: float = 5.0,
        client_name: str | None = None,
    ) -> None:
        # BroadcastBackend.__init__ only raises NotImplementedError, so it is not called.
        self.client_name = client_name or f"bookworm-live-{uuid.uuid4().hex[:12]}"
        self.reconnects = 0
        self._connections = aioredis.ConnectionPool.from_url(
            url, protocol=2, client_name=self.client_name, socket_connect_timeout=5
        )
        self._publisher = aioredis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=_PUBLISH_TIMEOUT
        )
        self._silent_until = 0.0  # loop time until which publish fails at once: Redis stopped answering
        self._health_interval = health_interval
        self._max_retry_delay = max_retry_delay
        self._confirm_timeout = confirm_timeout
        self._channels: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        # Bounded: when full, the reader stops reading and Redis buffers (or drops us: a reconnect).
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(_EVENT_BUFFER)
        self._conn: Any = None  # the live pub/sub connection, None while reconnecting
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open the pub/sub connection; raise BackendUnavailable if Redis cannot be reached."""
        if self._reader is not None and not self._reader.done():
            return  # already connected (Broadcast.connect calls this too)
        try:
            conn = await self._open()
        except (RedisError, OSError) as error:
            raise BackendUnavailable(f"cannot connect to Redis for live notices: {error}") from None
        self._reader = asyncio.create_task(self._run(conn), name=f"{self.client_name}-reader")

    async def disconnect(self) -> None:
        """Close the connections and wake anyone waiting in next_published."""
        if self._reader is not None:
            await cancel_and_wait([self._reader])
        await self._publisher.aclose()
        await self._connections.aclose()
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(None)

    async def subscribe(self, channel: str) -> None:
        """Subscribe, and return once Redis confirms it (or at once while reconnecting)."""
        self._channels.add(channel)
        conn = self._conn
        if conn is None:
            return  # the next connection subscribes it and then announces a catch-up
        confirmed = self._confirmations.get(channel)
        if confirmed is None:
            confirmed = self._confirmations[channel] = asyncio.get_running_loop().create_future()
        try:
            await conn.send_command("SUBSCRIBE", channel, check_health=False)
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.shield(confirmed)
        except (RedisError, OSError):
            pass  # the reader sees the drop, resubscribes and announces a catch-up
        except TimeoutError:
            log.warning("live notices: Redis did not confirm SUBSCRIBE %s in time", channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish a message; raise BackendUnavailable if Redis cannot take it."""
        # After a timeout, fail at once for a while: a frozen Redis must not hold every projection's
        # commit loop for the timeout, batch after batch (the notifier announces a catch-up later).
        now = asyncio.get_running_loop().time()
        if now < self._silent_until:
            raise BackendUnavailable(f"cannot publish to Redis channel {channel!r}: Redis stopped answering")
        try:
            await self._publisher.publish(channel, message)
        except (RedisError, OSError) as error:
            if isinstance(error, RedisTimeoutError | TimeoutError):
                self._silent_until = now + _PUBLISH_TIMEOUT + self._max_retry_delay
            raise BackendUnavailable(f"cannot publish to Redis channel {channel!r}: {error}") from None

    async def next_published(self) -> Event:
        """Wait for the next message on a subscribed channel (no polling)."""
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # let every other waiter see it too
            raise BackendUnavailable("the live notice backend is disconnected")
        return event

    async def _open(self) -> Any:
        conn = self._connections.make_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.connect()
            # From here subscribe() sends on this connection itself; the channels known so far
            # are subscribed below in the same (uninterrupted) step, so none falls in between.
            self._conn = conn
            if self._channels:
                await conn.send_command("SUBSCRIBE", *self._channels, check_health=False)
        except BaseException:
            self._conn = None
            await conn.disconnect(nowait=True)
            raise
        return conn

    async def _run(self, conn: Any) -> None:
        while True:
            try:
                await self._read(conn)
            except Exception as error:  # the reader must outlive any failure: it is the only one
                log.warning("live notices: lost the Redis pub/sub connection (%s); reconnecting", error)
            finally:
                self._conn = None
                self._release_confirmations()
                await conn.disconnect(nowait=True)
            conn = await self._reconnect()
            self.reconnects += 1
            for channel in list(self._channels):
                await self._events.put(Event(channel, CATCH_UP))

    async def _reconnect(self) -> Any:
        delay = _FIRST_RETRY_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except (RedisError, OSError) as error:
                log.warning("live notices: Redis unreachable (%s); retrying in %.1f s", error, delay)
            delay = min(delay * 2, self._max_retry_delay)

    async def _read(self, conn: Any) -> None:
        awaiting_pong = False
        while True:
            # With an explicit timeout, redis-py returns None instead of raising (and keeps partial data).
            response = await conn.read_response(timeout=self._health_interval)
            if response is None:
                if awaiting_pong:
                    raise RedisConnectionError("Redis did not answer PING")
                await conn.send_command("PING", check_health=False)
                awaiting_pong = True
                continue
            awaiting_pong = False
            await self._handle(response)

    async def _handle(self, response: Any) -> None:
        if not isinstance(response, list):
            return  # the reply to a health PING while subscribed to nothing
        kind, channel = response[0], response[1].decode()
        if kind == b"message":
            await self._events.put(Event(channel, response[2].decode(errors="replace")))
        elif kind == b"subscribe":
            confirmed = self._confirmations.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    def _release_confirmations(self) -> None:
        for confirmed in self._confirmations.values():
            if not confirmed.done():
                confirmed.set_result(None)
        self._confirmations.clear()
