"""Our broadcaster backend on Redis pub/sub: reconnects by itself and says when messages may be lost.

broadcaster 0.3.1's bundled Redis backends fail with redis-py 8. This one owns a single RESP2 pub/sub
connection, read by one task and written by another. Each subscription starts with a CATCH_UP message,
put on its channel once Redis confirms the SUBSCRIBE: from there on every message arrives, and what
was published before may have been missed. After a drop it resubscribes every channel, so each gets a
CATCH_UP again: what was published during the outage is gone from pub/sub, and subscribers must catch
up from read.changes.

subscribe() and unsubscribe() only record which channels are wanted and never suspend, so a task
cancelled around them cannot leave a channel half subscribed: broadcaster's Broadcast.subscribe then
has no await between registering a subscriber and yielding it, nor in its clean-up (where a
cancellation would otherwise raise KeyError and leak the channel). The writer task sends what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from broadcaster import BroadcastBackend, Event
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import tracing
from app.aio import cancel_and_wait
from app.backoff import Backoff
from app.redis_line import RedisLine

log = logging.getLogger(__name__)

CATCH_UP = "catch-up"
"""Message meaning "notices on this channel may have been lost": subscribers re-read read.changes.

The backend sends it when Redis confirms a SUBSCRIBE (first, and after every reconnection); the
notifier sends it when a publish failed or a consumer took over from one that may have died.
"""

_FIRST_RETRY_DELAY = 0.1
_CHANNELS_PER_COMMAND = 1_000
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
        # Every projection batch publishes: on a line of its own, or through redis-py (TLS, say) when None.
        self._line = RedisLine.of(self._publisher)
        self._silent_until = 0.0  # loop time until which publish fails at once: Redis stopped answering
        self._health_interval = health_interval
        self._max_retry_delay = max_retry_delay
        self._channels: set[str] = set()  # wanted
        self._sent: set[str] = set()  # subscribed on the live connection, or being subscribed
        self._to_subscribe: set[str] = set()  # wanted since the writer last ran (even if still subscribed)
        self._to_unsubscribe: set[str] = set()  # sent, and no longer wanted
        self._unconfirmed: dict[str, int] = {}  # SUBSCRIBE commands Redis has not confirmed yet
        self._changed = asyncio.Event()  # wakes the writer
        # Bounded: when full, the reader stops reading and Redis buffers (or drops us: a reconnect).
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(_EVENT_BUFFER)
        self._conn: Any = None  # the live pub/sub connection, None while reconnecting
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None

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
        self._conn = None
        await cancel_and_wait(task for task in (self._reader, self._writer) if task is not None)
        if self._line is not None:
            await self._line.aclose()
        await self._publisher.aclose()
        await self._connections.aclose()
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(None)

    async def subscribe(self, channel: str) -> None:
        """Want the channel; CATCH_UP arrives on it once Redis confirms. Never suspends (see the module)."""
        self._channels.add(channel)
        self._to_subscribe.add(channel)
        self._to_unsubscribe.discard(channel)
        self._changed.set()

    async def unsubscribe(self, channel: str) -> None:
        """Stop wanting the channel. Never suspends (see the module)."""
        self._channels.discard(channel)
        self._to_subscribe.discard(channel)
        if channel in self._sent:
            self._to_unsubscribe.add(channel)
        self._changed.set()

    async def publish(self, channel: str, message: Any) -> None:
        """Publish a message; raise BackendUnavailable if Redis cannot take it."""
        await self.publish_many([(channel, message)])

    async def publish_many(self, messages: Sequence[tuple[str, Any]]) -> None:
        """Publish (channel, message) pairs in order, in one round trip; raise BackendUnavailable if not.

        After an error some of them may have been published, and the others are not.
        """
        # After a timeout, fail at once for a while: a frozen Redis must not hold every projection's
        # commit loop for the timeout, batch after batch (the notifier announces a catch-up later).
        now = asyncio.get_running_loop().time()
        if now < self._silent_until:
            raise BackendUnavailable(f"cannot publish to {_channels(messages)}: Redis stopped answering")
        try:
            if self._line is not None:
                await self._publish_on_line(self._line, messages)
            else:
                pipe = self._publisher.pipeline(transaction=False)
                for channel, message in messages:
                    pipe.publish(channel, message)
                await pipe.execute()
        except (RedisError, OSError) as error:
            if isinstance(error, RedisTimeoutError | TimeoutError):
                self._silent_until = now + _PUBLISH_TIMEOUT + self._max_retry_delay
            raise BackendUnavailable(f"cannot publish to {_channels(messages)}: {error}") from None

    async def _publish_on_line(self, line: RedisLine, messages: Sequence[tuple[str, Any]]) -> None:
        commands = [("PUBLISH", channel, message) for channel, message in messages]
        with tracing.redis_span("PUBLISH"):
            await line.call_many(*commands, drop_after=_PUBLISH_TIMEOUT)

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
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        # Every wanted channel is sent again on this connection, and confirmed with a CATCH_UP.
        self._conn = conn
        self._sent.clear()
        self._to_subscribe, self._to_unsubscribe = set(self._channels), set()
        self._unconfirmed.clear()
        self._changed.set()
        self._writer = asyncio.create_task(self._write(conn), name=f"{self.client_name}-writer")
        return conn

    async def _run(self, conn: Any) -> None:
        while True:
            try:
                await self._read(conn)
            except Exception as error:  # the reader must outlive any failure: it is the only one
                log.warning("live notices: lost the Redis pub/sub connection (%s); reconnecting", error)
            finally:
                self._conn = None
                if self._writer is not None:
                    await cancel_and_wait([self._writer])
                await conn.disconnect(nowait=True)
            conn = await self._reconnect()
            self.reconnects += 1

    async def _write(self, conn: Any) -> None:
        """Send SUBSCRIBE and UNSUBSCRIBE until Redis has what is wanted; a failure is the reader's to see."""
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                await self._send_changes(conn)
        except Exception as error:
            # The reader sees the connection closed and reconnects. Nothing to say while we close it:
            # Python 3.11's wait_for (in redis-py) can turn the writer's cancellation into an error.
            if self._conn is conn:
                log.warning("live notices: cannot write to the Redis pub/sub connection: %s", error)
            await conn.disconnect(nowait=True)

    async def _send_changes(self, conn: Any) -> None:
        # A channel wanted anew is subscribed again even if it still is: its new subscriber waits for
        # the CATCH_UP of a confirmation, and Redis confirms a repeated SUBSCRIBE too.
        subscribe, unsubscribe = sorted(self._to_subscribe), sorted(self._to_unsubscribe)
        self._to_subscribe, self._to_unsubscribe = set(), set()
        self._sent.difference_update(unsubscribe)
        self._sent.update(subscribe)
        for channel in subscribe:
            self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
        for command, channels in (("SUBSCRIBE", subscribe), ("UNSUBSCRIBE", unsubscribe)):
            for start in range(0, len(channels), _CHANNELS_PER_COMMAND):
                chunk = channels[start : start + _CHANNELS_PER_COMMAND]
                await conn.send_command(command, *chunk, check_health=False)

    async def _reconnect(self) -> Any:
        backoff = Backoff(_FIRST_RETRY_DELAY, self._max_retry_delay)
        while True:
            delay = backoff.next()
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except (RedisError, OSError) as error:
                log.warning("live notices: Redis unreachable (%s); retrying in %.1f s", error, delay)

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
        elif kind == b"subscribe" and self._confirmed(channel):
            await self._events.put(Event(channel, CATCH_UP))

    def _confirmed(self, channel: str) -> bool:
        """Count a confirmation; tell whether the channel is now subscribed as its last command wanted."""
        left = self._unconfirmed.get(channel, 0) - 1
        if left > 0:
            self._unconfirmed[channel] = left
            return False  # an UNSUBSCRIBE and a SUBSCRIBE sent since are still ahead
        self._unconfirmed.pop(channel, None)
        return left == 0 and channel in self._channels


def _channels(messages: Sequence[tuple[str, Any]]) -> str:
    names = sorted({channel for channel, _ in messages})
    return f"Redis channel{'s' * (len(names) > 1)} {', '.join(map(repr, names))}"
