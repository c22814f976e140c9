"""A pipelined Redis connection of its own, for the commands on a hot path: commands out, replies back.

Through redis-py's asyncio client one command costs 53-70 µs of CPU (its pool, command packing,
observability hooks and response parsing for each call); written on a connection of its own and read with
hiredis's parser (which redis-py uses too) it costs 13-17 µs (bench/README.md, "One line for the charges").
Each of these keeps one: the budget charges, on every request's path (app/admission/budget.py); each
consumer group's read of the events stream, with its acknowledgement of the last batch (app/bus/consumer.py);
the relay's batch (app/bus/relay.py); and the publish of a projection batch's notices (app/live/backend.py).

The line is for plain connections: TCP or a Unix socket, with a password, user name and database as the
client's URL gives them. For a client with anything more (TLS, a credential provider, RESP3) `RedisLine.of`
returns None, and its caller goes through redis-py.

Commands go out in order and Redis answers them in order, so each reply goes to the oldest command waiting.
A caller that stops waiting (its timeout) leaves its place in the queue, and the reply is dropped when it
comes; a call that finds MAX_WAITING commands still unanswered (a Redis that stopped answering) closes the
connection, which fails every command still waiting. Any connection error fails them all the same, and the
next command connects anew.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError, InvalidResponse, ResponseError

MAX_WAITING = 256  # commands left unanswered on the line when another call comes, at most


def pack(*args: bytes | str | int | float) -> bytes:
    """One command in the Redis protocol, its arguments encoded as redis-py encodes them."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, int):  # bool included, as redis-py refuses it: never passed here
            data = b"%d" % arg
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses

    def send(self, command: bytes) -> asyncio.Future[Any]:
        return self.send_many([command])[0]

    def send_many(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Write `commands` at once; return a future for each reply, in order."""
        if self.closed or self.transport is None:
            raise ConnectionError("the line to Redis is closed")
        # Commands still unanswered from before, not this call's: one call (a relay batch of 500) may
        # send more than MAX_WAITING at once.
        if len(self.waiting) >= MAX_WAITING:
            self.close(ConnectionError(f"Redis left {MAX_WAITING} commands unanswered"))
            raise ConnectionError(f"Redis left {MAX_WAITING} commands unanswered")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in commands]
        self.waiting.extend(futures)
        self.transport.write(b"".join(commands))
        return futures

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise InvalidResponse("a reply no command waits for")
                future = self.waiting.popleft()
                if future.done():  # its caller stopped waiting
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except InvalidResponse as exc:
            self.close(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Redis closed the line: {exc!r}"))

    def close(self, exc: Exception) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


class RedisLine:
    """A lazily connected, pipelined connection to the Redis a redis-py client connects to."""

    def __init__(self, kwargs: dict[str, Any], unix: bool) -> None:
        self._kwargs = kwargs
        self._unix = unix
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    @classmethod
    def of(cls, redis: aioredis.Redis) -> RedisLine | None:
        """A line to `redis`'s server, or None when its connections are more than a plain socket."""
        pool = redis.connection_pool
        kwargs = dict(pool.connection_kwargs)
        if pool.connection_class not in (Connection, UnixDomainSocketConnection):
            return None  # TLS, or a connection class of the caller's own
        if kwargs.get("credential_provider") is not None or kwargs.get("protocol") not in (None, 2, "2"):
            return None
        return cls(kwargs, unix=pool.connection_class is UnixDomainSocketConnection)

    async def call(self, *args: bytes | str | int | float) -> Any:
        """Send one command and return its reply (ResponseError for an error reply, ConnectionError or
        OSError when the line fails)."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connected()
        return await protocol.send(pack(*args))

    async def call_many(
        self, *commands: Sequence[bytes | str | int | float], drop_after: float | None = None
    ) -> list[Any]:
        """Send `commands` in one write and return their replies in order.

        Raises the first failure (an error reply, a lost connection) once every reply is in. A caller that
        stops waiting gives up every reply: none is left for anyone, and each is dropped when it comes.
        With `drop_after`, a call not answered within that many seconds raises TimeoutError, and one cut
        short so or cancelled drops the connection (the next call connects anew): a reply still on its
        way, or a blocking read still waiting in Redis, would otherwise hold up the calls behind it.
        """
        if drop_after is None:
            return await self._call_many(commands)
        try:
            async with asyncio.timeout(drop_after):
                return await self._call_many(commands)
        except (TimeoutError, asyncio.CancelledError):
            await self.aclose()
            raise

    async def _call_many(self, commands: Sequence[Sequence[bytes | str | int | float]]) -> list[Any]:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connected()
        futures = protocol.send_many([pack(*command) for command in commands])
        replies: list[Any] = []
        failure: BaseException | None = None
        try:
            for future in futures:
                try:
                    replies.append(await future)
                except (ResponseError, ConnectionError, OSError) as exc:
                    failure = failure or exc
                    replies.append(None)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        if failure is not None:
            raise failure
        return replies

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.close(ConnectionError("the line to Redis was closed"))
            self._protocol = None

    async def _connected(self) -> _Protocol:
        # One connection attempt at a time, whoever waits for it; a caller's timeout does not cancel it.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect(), name="redis-line-connect")
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Protocol:
        loop, k = asyncio.get_running_loop(), self._kwargs
        timeout = k.get("socket_connect_timeout") or k.get("socket_timeout") or 5.0
        async with asyncio.timeout(timeout):
            if self._unix:
                _, protocol = await loop.create_unix_connection(_Protocol, k["path"])
            else:
                _, protocol = await loop.create_connection(
                    _Protocol, k.get("host", "localhost"), k.get("port", 6379)
                )
            setup = []
            if k.get("password") is not None:
                user = k.get("username")
                setup.append(("AUTH", user, k["password"]) if user else ("AUTH", k["password"]))
            if k.get("db"):
                setup.append(("SELECT", k["db"]))
            try:
                for reply in [protocol.send(pack(*command)) for command in setup]:
                    await reply
            except BaseException:
                protocol.close(ConnectionError("the line to Redis could not be set up"))
                raise
        self._protocol = protocol
        return protocol
