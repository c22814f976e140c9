"""Strawberry's two websocket protocol handlers, held to the websocket limits (app.schema.websocket_limits).

Both protocols: a connection_init deadline, a typed `error` for an operation past the per-connection
cap or a subscription past the caller's cap (the connection stays open), and a close when the token
that signed the connection in expires. Legacy graphql-ws also runs queries and mutations properly.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any, cast

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws import types as transport
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws import types as legacy
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from app.aio import cancel_and_wait
from app.schema.context import Context
from app.schema.subscriptions import DIRECT, DirectOperation, deliver, error_payload
from app.schema.websocket_limits import (
    INIT_TIMEOUT,
    TOKEN_EXPIRED,
    TOKEN_EXPIRED_MESSAGE,
    UNAUTHENTICATED,
    ConnectionGuard,
    WebsocketLimits,
    error,
    limits_of,
    spread,
)
from app.schema.wire import SocketWire, forget_handshake

RECANCEL_EVERY = 1.0  # seconds between two cancellations of an operation that has not ended yet
BAD_MESSAGE = (4400, "Failed to parse message")
SECOND_INIT = (4429, "Too many initialisation requests")
NO_INCREMENTAL = "Incremental delivery (@defer, @stream) is not supported over graphql-ws."


def keep_cancelling(task: asyncio.Task[Any]) -> None:
    """Cancel `task` now and again every RECANCEL_EVERY seconds until it has ended, without waiting.

    Python 3.11's wait_for (inside redis-py and asyncpg) can turn a cancellation that arrives as the
    awaited call completes into an error, which the caller may then handle and go on: cancelled once,
    such a subscription would run on after its client had gone (app.aio.cancel_and_wait, for a caller
    that must not block).
    """
    if not task.done():
        task.cancel()
        asyncio.get_running_loop().call_later(RECANCEL_EVERY, keep_cancelling, task)


async def take_turns() -> None:
    """Let other connections and requests run before this connection's next message.

    Messages a client sent in one burst are all buffered already, so reading the next one does not wait:
    without this, one connection would handle its hundred messages in one go, and a hundred such
    connections would hold the event loop for seconds.
    """
    await asyncio.sleep(0)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws within the websocket limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = ConnectionGuard(limits_of(self.view), self.context)
        self.max_subscriptions_per_connection = None  # the guard's typed refusal replaces strawberry's

    async def handle_message(self, message: transport.Message) -> None:
        await take_turns()
        try:
            await super().handle_message(message)
        except (TypeError, AttributeError):  # a message, or its payload, that is not a JSON object
            await self.websocket.close(*BAD_MESSAGE)

    async def handle_connection_init(self, message: transport.ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # strawberry cancelled the deadline's task but keeps it, and with it (Python 3.11 keeps the
        # CancelledError) its frames: a kilobyte of every idle socket.
        self.connection_init_timeout_task = None
        forget_handshake(cast(ASGIWebSocketAdapter, self.websocket).ws.scope)
        if self.connection_acknowledged:
            self.guard.watch_expiry(self._token_expired)

    async def handle_connection_init_timeout(self) -> None:
        await asyncio.sleep(spread(0.0, of=self.connection_init_wait_timeout.total_seconds()))
        await super().handle_connection_init_timeout()
        if self.connection_timed_out:
            self.guard.log_close("ws-closed-init-timeout", "no connection_init in time")

    async def handle_subscribe(self, message: transport.SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            payload = message["payload"]
            query, name = payload.get("query"), payload.get("operationName")
            refusal = self.guard.before_start(len(self.operations), query, name)
            if refusal is not None:
                await self.send_message(_transport_error(message["id"], refusal))
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        with self.guard.subscription(operation.query, operation.operation_name) as refusal:
            if refusal is None:
                DIRECT.set(self._direct(operation))
                await super().run_operation(operation)
                return
        await operation.send_operation_message(_transport_error(operation.id, refusal))

    async def _send_result_stream(self, operation: Operation[Context, None], result_source: Any) -> None:
        try:
            await super()._send_result_stream(operation, result_source)
        except GraphQLError as refused:
            # Admission refuses as it parses (a syntax error, QUERY_TOO_COMPLEX, RATE_LIMITED), before any
            # result: answered as strawberry answers a document that fails validation.
            await self._handle_pre_execution_error(operation, PreExecutionError(data=None, errors=[refused]))
            return
        direct = DIRECT.get()
        if direct is None or direct.handoff is None:
            return
        try:
            await deliver(direct.handoff, direct.send, direct.wire)
        except WebSocketDisconnected:
            raise
        except Exception as failure:  # what ended the stream, sent as strawberry sends a resolver's error
            await direct.send(error_payload(self.schema, failure))

    def _direct(self, operation: Operation[Context, None]) -> DirectOperation:
        """Let a cohort's subscriber send its encoded payloads straight to this socket."""
        head = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":'
        socket = cast(ASGIWebSocketAdapter, self.websocket).ws

        async def send(payload: str) -> None:
            if operation.completed:
                return
            try:
                await socket.send_text(f"{head}{payload}}}")
            except WebSocketDisconnect as disconnected:
                raise WebSocketDisconnected from disconnected

        wire = SocketWire.of(socket.scope, head, operation)
        return DirectOperation(operation.query, operation.operation_name, operation.variables, send, wire)

    async def shutdown(self) -> None:
        await self.guard.stop()
        await super().shutdown()

    async def cleanup_operation(self, operation_id: str) -> None:
        operation = self.operations.get(operation_id)
        if operation is not None:
            # Ended by the client (or the connection): its task is cancelled, but a cohort's leader
            # writes to its wire without it, and the client may reuse the id at once (SocketWire).
            operation.completed = True
        await super().cleanup_operation(operation_id)
        # strawberry cancels the task once, and shutdown() then waits for it: a cancellation lost during
        # the operation's budget charge (a Redis call) left the subscription running, with its Redis
        # channel and this connection's slot, after the client had gone.
        if operation is not None and operation.task is not None:
            keep_cancelling(operation.task)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            return  # the client left while its result was being sent: nothing went wrong here
        await super().handle_task_exception(error)

    async def _token_expired(self) -> None:
        self.guard.log_close("ws-closed-token-expired", "token expired")
        await self.websocket.close(*TOKEN_EXPIRED)


def _transport_error(operation_id: str, payload: dict[str, object]) -> transport.Message:
    return cast(transport.ErrorMessage, {"id": operation_id, "type": "error", "payload": [payload]})


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws within the websocket limits; runs queries and mutations as well as subscriptions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = ConnectionGuard(limits_of(self.view), self.context)
        self.max_subscriptions_per_connection = None  # the guard's typed refusal replaces strawberry's
        self.init_received = False

    async def handle(self) -> None:
        # The protocol sets no deadline for connection_init; without one an idle socket lives forever.
        self.guard.after(spread(self.guard.limits.settings.connection_init_timeout), self._init_deadline)
        try:
            await super().handle()
        finally:
            await self.guard.stop()

    async def handle_message(self, message: legacy.OperationMessage) -> None:
        await take_turns()
        try:
            await super().handle_message(message)
        except (KeyError, TypeError, AttributeError):  # a message without id or payload, or not an object
            await self.websocket.close(*BAD_MESSAGE)

    async def handle_connection_init(self, message: legacy.ConnectionInitMessage) -> None:
        if self.init_received:
            # A second init would sign in again and start a second keep-alive task.
            await self.websocket.close(*SECOND_INIT)
            return
        self.init_received = True
        forget_handshake(cast(ASGIWebSocketAdapter, self.websocket).ws.scope)
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.guard.watch_expiry(self._token_expired)

    async def handle_start(self, message: legacy.StartMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.tasks:
            payload = message["payload"]
            query, name = payload.get("query"), payload.get("operationName")
            refusal = self.guard.before_start(len(self.tasks), query, name)
            if refusal is not None:
                await self.send_message(_legacy_error(message["id"], refusal))
                return
        await super().handle_start(message)

    async def cleanup_operation(self, operation_id: str) -> None:
        task = self.tasks.get(operation_id)
        if task is not None:
            # strawberry cancels once and waits: see TransportWSHandler.cleanup_operation.
            await cancel_and_wait([task])
            if not task.cancelled():
                task.exception()  # retrieved and dropped, as strawberry's clean-up does
        await super().cleanup_operation(operation_id)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        try:
            with self.guard.subscription(query, operation_name) as refusal:
                if refusal is not None:
                    await self.send_message(_legacy_error(operation_id, refusal))
                    return
                await self._run(operation_id, query, operation_name, variables)
        except asyncio.CancelledError:
            # A `stop` (or the connection's end): the protocol answers a stop with `complete`.
            with suppress(WebSocketDisconnected):
                await self.send_message({"type": "complete", "id": operation_id})
        except WebSocketDisconnected:
            pass  # the client left while its result was being sent: nothing went wrong here
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _run(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        # stream() runs any operation type; strawberry's subscribe() refuses queries and mutations with
        # an error that reads as an internal one.
        results = await self.schema.stream(
            query,
            variable_values=variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation_name,
        )
        self.subscriptions[operation_id] = results
        try:
            async with aclosing(results):
                first = True
                async for result in results:
                    if first and isinstance(result, PreExecutionError):
                        assert result.errors
                        await self.send_message(_legacy_error(operation_id, result.errors[0].formatted))
                        return
                    if not isinstance(result, ExecutionResult):
                        await self.send_message(_legacy_error(operation_id, {"message": NO_INCREMENTAL}))
                        return
                    await self.send_data_message(result, operation_id)
                    first = False
        except GraphQLError as refused:  # admission's refusal as it parses: see TransportWSHandler
            await self.send_message(_legacy_error(operation_id, refused.formatted))
            return
        await self.send_message({"type": "complete", "id": operation_id})

    async def _init_deadline(self) -> None:
        if not self.init_received:
            self.guard.log_close("ws-closed-init-timeout", "no connection_init in time")
            await self.websocket.close(*INIT_TIMEOUT)

    async def _token_expired(self) -> None:
        self.guard.log_close("ws-closed-token-expired", "token expired")
        message = {"type": "connection_error", "payload": error(UNAUTHENTICATED, TOKEN_EXPIRED_MESSAGE)}
        await self.send_message(cast(legacy.ConnectionErrorMessage, message))
        await self.websocket.close(*TOKEN_EXPIRED)


def _legacy_error(operation_id: str, payload: Any) -> legacy.OperationMessage:
    return cast(legacy.ErrorMessage, {"type": "error", "id": operation_id, "payload": payload})


__all__ = ["LegacyWSHandler", "TransportWSHandler", "WebsocketLimits"]
