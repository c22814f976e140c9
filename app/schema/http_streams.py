"""Operations streamed over plain HTTP: GraphQL over Server-Sent Events (graphql-sse, distinct connections
mode) and multipart subscriptions (`Accept: multipart/mixed;subscriptionSpec=1.0`, as Apollo clients ask).

A stream opens inside its request, within the client's fair-share turn: the caps are checked, then the
operation is admitted and run until its subscription is live (the hub has joined its topic, so a client
that has the response's headers misses no change) or it has a first result. A request error found by
then (a bad document, an operation over budget) is answered as JSON with its status, as a query's is;
what comes later (a refused `after:`, a subscription that needs a sign-in, the token's expiry) is a
GraphQL error inside the stream. Once it streams, the request stops counting as in flight: the stream
holds a connection slot of its address, shared with websockets, and a subscription holds one of its
caller's subscription slots, until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from contextlib import aclosing
from enum import Enum

from graphql import GraphQLError
from starlette.requests import Request
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.base import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from app.admission.clients import ip_group
from app.aio import cancel_and_wait
from app.queries import reads
from app.schema.context import Context
from app.schema.responses import Refused, is_request_error
from app.schema.stream_transports import SSE, JSONEncoder, Multipart, Transport
from app.schema.subscriptions import STARTED
from app.schema.websocket_limits import (
    RETRY_AFTER,
    TOKEN_EXPIRED_MESSAGE,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_SUBSCRIPTIONS,
    UNAUTHENTICATED,
    Refusal,
    WebsocketLimits,
    error,
    subscriber_of,
)
from app.schema.websockets import keep_cancelling
from app.settings import Settings

logger = logging.getLogger("bookworm.streams")

QUEUE_SIZE = 8  # results waiting to be sent; past it the hub's subscriber queue holds (and then lags)
STREAM = "http_stream"  # the scope state entry of the request's stream, closed when the request ends
STREAM_TYPE_SSE, STREAM_TYPE_MULTIPART = "text/event-stream", "multipart/mixed"
STOPPING = "This server process is stopping; open the stream again."
UNEXPECTED = error("INTERNAL_SERVER_ERROR", "Unexpected error. It has been logged; subscribe again.")

Render = Callable[[ExecutionResult], Awaitable[GraphQLHTTPResponse]]


class Signal(Enum):
    """What a stream waits for besides a result."""

    END = "end"  # the operation has no more results
    FAILED = "failed"  # the operation raised: logged, and the stream ends with an error
    KEEP_ALIVE = "keep-alive"  # nothing came within the transport's heartbeat interval
    EXPIRED = "expired"  # the token that signed the request in has expired
    GONE = "gone"  # the process is stopping: the response ends as a dropped connection would


class HTTPStream:
    """One operation whose results an HTTP response streams: an async iterator of the response's chunks."""

    def __init__(
        self,
        results: AsyncGenerator[object, None],
        transport: Transport,
        render: Render,
        encode_json: JSONEncoder,
        expires_at: float | None,
    ) -> None:
        self.transport = transport
        self.on_streaming: Callable[[], None] = lambda: None  # called as the response starts
        self.on_expired: Callable[[], None] = lambda: None
        self.on_closed: Callable[[], None] = lambda: None  # called once, when the operation has ended
        self._results = results
        self._render = render
        self._encode_json = encode_json
        self._expires_at = expires_at
        self._queue: asyncio.Queue[ExecutionResult | Signal] = asyncio.Queue(QUEUE_SIZE)
        self._ready = asyncio.Event()
        self._head: ExecutionResult | Signal | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._chunks = self._stream()

    def __aiter__(self) -> HTTPStream:
        return self

    async def __anext__(self) -> str:
        return await anext(self._chunks)

    async def open(self) -> ExecutionResult | None:
        """Run the operation until it is live or has a first result; return that result if it is a request
        error (there is nothing to stream then), else None."""
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()
        if self._queue.empty():
            return None
        head = self._queue.get_nowait()
        if isinstance(head, ExecutionResult) and is_request_error(head):
            return head
        self._head = head
        return None

    def end(self) -> None:
        """End the response at once, without a completion, so the client reconnects (the process stops)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._head = None
        self._queue.put_nowait(Signal.GONE)
        self.stop()

    def stop(self) -> None:
        """Stop the operation, without waiting: close() waits."""
        if self._task is not None:
            keep_cancelling(self._task)

    async def close(self) -> None:
        """Stop the operation and wait until it has ended (once; later calls return at once)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._task is not None:
                await cancel_and_wait([self._task])
        finally:
            self.on_closed()

    async def _run(self) -> None:
        # The stream outlives its request: what it reads is recorded for no answer of the response cache.
        reads.stop_recording()
        STARTED.set(lambda _position: self._ready.set())
        try:
            await self._pump()
        except GraphQLError as refused:
            # Admission refuses a document it cannot parse or afford by raising as it parses: strawberry
            # answers a query so refused with the error, and a stream does the same.
            await self._queue.put(PreExecutionError(data=None, errors=[refused]))
            await self._queue.put(Signal.END)
        except Exception:
            logger.exception("an operation streamed over HTTP failed")
            await self._queue.put(Signal.FAILED)
        finally:
            self._ready.set()

    async def _pump(self) -> None:
        async with aclosing(self._results) as results:
            async for result in results:
                if not isinstance(result, ExecutionResult):
                    raise TypeError(f"cannot stream a {type(result).__name__}: no incremental delivery")
                await self._queue.put(result)
                self._ready.set()
        await self._queue.put(Signal.END)

    async def _stream(self) -> AsyncGenerator[str, None]:
        try:
            self.on_streaming()
            yield self.transport.opening(self._encode_json)
            while (item := await self._take()) is not Signal.GONE:
                chunk, last = await self._chunk(item)
                yield chunk
                if last:
                    return
        finally:
            # The response may be cancelled here (the client left): no waiting, the request's end waits.
            self.stop()

    async def _chunk(self, item: ExecutionResult | Signal) -> tuple[str, bool]:
        """The bytes that send `item`, and whether they end the stream."""
        transport, encode_json = self.transport, self._encode_json
        if item is Signal.KEEP_ALIVE:
            return transport.heartbeat_message(encode_json), False
        if item is Signal.END:
            return transport.encode_complete(), True
        if item is Signal.EXPIRED:
            self.on_expired()
            return transport.fatal(error(UNAUTHENTICATED, TOKEN_EXPIRED_MESSAGE), encode_json), True
        if item is Signal.FAILED:
            return transport.fatal(UNEXPECTED, encode_json), True
        assert isinstance(item, ExecutionResult)
        return transport.encode_next(await self._render(item), encode_json), False

    async def _take(self) -> ExecutionResult | Signal:
        """The next result or signal, waiting at most until a keep-alive is due or the token expires."""
        if self._head is not None:
            head, self._head = self._head, None
            return head
        wait = self.transport.heartbeat_interval
        if self._expires_at is not None:
            wait = min(wait, self._expires_at - time.time())
            if wait <= 0:
                return Signal.EXPIRED
        try:
            async with asyncio.timeout(wait):
                return await self._queue.get()
        except TimeoutError:
            expired = self._expires_at is not None and time.time() >= self._expires_at
            return Signal.EXPIRED if expired else Signal.KEEP_ALIVE


class HTTPStreams:
    """The HTTP streams of one API process: which one a request asks for, their caps, and their opening."""

    def __init__(self, settings: Settings, limits: WebsocketLimits) -> None:
        self.settings = settings
        self.limits = limits
        multipart = Multipart()
        multipart.heartbeat_interval = settings.multipart_keep_alive
        self.transports: tuple[Transport, ...] = (multipart, SSE(settings.sse_keep_alive))
        self.open_streams: set[HTTPStream] = set()
        self.stopping = False

    def transport(self, accept: str | None) -> Transport | None:
        """The streaming protocol an Accept header asks for, if any."""
        lowered = (accept or "").lower()
        if STREAM_TYPE_SSE not in lowered and STREAM_TYPE_MULTIPART not in lowered:
            return None  # every plain request asks: this costs it no parse of its header
        return next((t for t in self.transports if t.accepts(lowered)), None)

    async def open(
        self,
        schema: BaseSchema,
        request: GraphQLRequestData,
        context: Context,
        transport: Transport,
        allowed: Collection[OperationType],
        *,
        subscription: bool,
        render: Render,
        encode_json: JSONEncoder,
    ) -> ExecutionResult | HTTPStream:
        """Open the stream of an operation within the caps (raise Refused past one); return its request
        error instead when it has one."""
        release = self._hold(context, subscription=subscription)
        try:
            results = await schema.stream(
                request.query,
                variable_values=request.variables,
                context_value=context,
                operation_name=request.operation_name,
                operation_extensions=request.extensions,
                allowed_operation_types=allowed,
            )
        except BaseException:
            release()
            raise
        stream = HTTPStream(results, transport, render, encode_json, context.principal.expires_at)
        self.open_streams.add(stream)

        def closed() -> None:
            self.open_streams.discard(stream)
            release()

        stream.on_closed = closed
        stream.on_expired = lambda: self.limits.log.warning(
            "stream-closed-token-expired",
            "HTTP stream closed: token expired (client %s)",
            ip_group(context.ip),
        )
        assert isinstance(context.request, Request)
        context.request.scope.setdefault("state", {})[STREAM] = stream
        request_error = await stream.open()
        if request_error is None:
            return stream
        await stream.close()
        del context.request.scope["state"][STREAM]
        return request_error

    def stop(self) -> None:
        """End every open stream and refuse new ones: the process is stopping, and uvicorn waits for open
        responses (the clients reconnect elsewhere, or to the next process, and resume with `after:`)."""
        self.stopping = True
        for stream in list(self.open_streams):
            stream.end()

    def _hold(self, context: Context, *, subscription: bool) -> Callable[[], None]:
        """Take a connection slot of the caller's address and, for a subscription, one of the caller's
        subscription slots; return what gives them back. Raise Refused when a cap is reached."""
        if self.stopping:
            raise Refused(503, STOPPING, "UNAVAILABLE", retry_after=1)
        ip = ip_group(context.ip)
        connections, subscriptions = self.limits.connections, self.limits.subscriptions
        refusal = connections.acquire(ip)
        if refusal is not None:
            raise self._too_many_connections(refusal, ip)
        subscriber = subscriber_of(context.principal, ip)
        if subscription and subscriptions.acquire(subscriber) is not None:
            connections.release(ip)
            raise self._too_many_subscriptions(subscriber, ip)

        def release() -> None:
            connections.release(ip)
            if subscription:
                subscriptions.release(subscriber)

        return release

    def _too_many_connections(self, refusal: Refusal, ip: str) -> Refused:
        settings = self.settings
        if refusal == "per_key":
            cap = settings.max_ws_connections_per_ip
            status, why = 429, f"over {cap} connections from one address"
            message = f"Too many open streams and websockets from your address (at most {cap}); retry later."
        else:
            cap = settings.max_ws_connections
            status, why = 503, f"over {cap} connections to this process"
            message = f"This server holds its maximum of {cap} streams and websockets; retry later."
        self.limits.log.warning(f"stream-refused-{refusal}", "HTTP stream refused: %s (client %s)", why, ip)
        return Refused(status, message, TOO_MANY_CONNECTIONS, retry_after=RETRY_AFTER)

    def _too_many_subscriptions(self, subscriber: str, ip: str) -> Refused:
        cap = self.settings.max_subscriptions_per_user
        self.limits.log.warning(
            "stream-refused-subscriptions",
            "HTTP stream refused: a subscription over %s for %s (client %s)",
            cap,
            subscriber,
            ip,
        )
        message = f"At most {cap} subscriptions may be live for one caller."
        return Refused(429, message, TOO_MANY_SUBSCRIPTIONS, retry_after=RETRY_AFTER)


def streaming(request: Request) -> bool:
    """Tell whether the request's answer is a stream."""
    return STREAM in request.scope.get("state", {})


async def close_stream(request: Request) -> None:
    """End the stream a request opened, if any, and wait until its operation has ended."""
    # The scope's state itself: request.state would raise (and catch) AttributeError for every request.
    stream: HTTPStream | None = request.scope.get("state", {}).get(STREAM)
    if stream is not None:
        await stream.close()
