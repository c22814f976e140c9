"""Websocket limits of one API process: connections per address and in all (checked at the handshake),
operations per connection, live subscriptions per caller, and timers that close a connection."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol, cast

from graphql import GraphQLError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_operation_type

from app.admission import QueryTooComplex, parse_limited
from app.admission.clients import TrustedProxies, client_ip, ip_group
from app.identity import Principal
from app.logs import ThrottledLogger
from app.metrics.instruments import refused
from app.schema.context import Context
from app.settings import Settings

logger = logging.getLogger("bookworm.websockets")

CLIENT_IP = "client_ip"  # the connection state key of the address the limits count the connection under
RETRY_AFTER = 5  # seconds a refused client is asked to wait before connecting again
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
UNAUTHENTICATED = "UNAUTHENTICATED"
MESSAGE_TOO_BIG = 1009  # the close code the websocket server uses past its ws_max_size
INIT_TIMEOUT = (4408, "Connection initialisation timeout")
TOKEN_EXPIRED = (4403, "token expired")
TOKEN_EXPIRED_MESSAGE = "The token has expired; sign in again."
Refusal = Literal["per_key", "total"]


SPREAD = 0.2  # deadlines of connections opened together end over a fifth of their length, not at once


def spread(seconds: float, *, of: float | None = None) -> float:
    """Return `seconds` plus a random share of `of` (default: of `seconds`) up to SPREAD.

    Connections opened in one burst (a flood, a reconnecting fleet) would otherwise reach their
    deadlines in the same turn of the event loop, and closing them all at once stalls every other client.
    """
    return seconds + random.uniform(0.0, SPREAD) * (seconds if of is None else of)


class Slots:
    """What each key holds now, at most `per_key` each and `total` (when set) for all keys together."""

    def __init__(self, *, per_key: int, total: int | None = None) -> None:
        self.per_key = per_key
        self.total = total
        self._held: Counter[str] = Counter()
        self._sum = 0

    def acquire(self, key: str) -> Refusal | None:
        """Take one slot for `key`; return which cap refused it, or None when it was granted."""
        if self.total is not None and self._sum >= self.total:
            return "total"
        if self._held[key] >= self.per_key:
            return "per_key"
        self._held[key] += 1
        self._sum += 1
        return None

    def release(self, key: str) -> None:
        """Give back one slot `key` acquired."""
        if self._held[key] <= 0:
            return
        self._held[key] -= 1
        self._sum -= 1
        if not self._held[key]:
            del self._held[key]

    def held(self, key: str | None = None) -> int:
        """Slots held by `key`, or by every key when None."""
        return self._sum if key is None else self._held[key]


def _client_ip(scope: Scope, proxies: TrustedProxies) -> str:
    """The handshake's client address (its /64 for IPv6), X-Forwarded-For believed from trusted proxies."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    forwarded = b",".join(value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for")
    return ip_group(client_ip(peer, forwarded.decode("latin-1") or None, proxies))


def error(code: str, message: str) -> dict[str, object]:
    """A GraphQL error with a machine-readable code, as websocket `error` payloads carry it."""
    return {"message": message, "extensions": {"code": code}}


class WebsocketLimits:
    """The websocket caps of one API process, shared by all its connections."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        per_ip, total = settings.max_ws_connections_per_ip, settings.max_ws_connections
        self.connections = Slots(per_key=per_ip, total=total)
        self.subscriptions = Slots(per_key=settings.max_subscriptions_per_user)
        self.log = ThrottledLogger(logger, max_value_chars=settings.max_log_value_chars)
        self.proxies = TrustedProxies.parse(settings.trusted_proxies)

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Run `app` for a websocket handshake within the connection caps; refuse it before accepting."""
        ip = _client_ip(scope, self.proxies)
        scope.setdefault("state", {})[CLIENT_IP] = ip
        refusal = self.connections.acquire(ip)
        if refusal is not None:
            await self._refuse(scope, send, ip, refusal)
            return
        try:
            await app(scope, self._watch(receive, ip), send)
        finally:
            self.connections.release(ip)

    async def _refuse(self, scope: Scope, send: Send, ip: str, refusal: Refusal) -> None:
        refused("ws_connections_per_address" if refusal == "per_key" else "ws_connections_total")
        if refusal == "per_key":
            status, cap, why = 429, self.settings.max_ws_connections_per_ip, "connections from one address"
            message = f"Too many websocket connections from your address (at most {cap}); retry later."
        else:
            status, cap, why = 503, self.settings.max_ws_connections, "connections to this process"
            message = f"This server holds its maximum of {cap} websocket connections; retry later."
        self.log.warning(f"ws-refused-{refusal}", "websocket refused: over %s %s (client %s)", cap, why, ip)
        if "websocket.http.response" not in scope.get("extensions", {}):
            # Closing before accepting: the server answers the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = json.dumps({"errors": [error(TOO_MANY_CONNECTIONS, message)]}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})

    def _watch(self, receive: Receive, ip: str) -> Receive:
        async def receive_and_log_too_big() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and message.get("code") == MESSAGE_TOO_BIG:
                limit = self.settings.max_ws_message_bytes
                self.log.warning(
                    "ws-closed-too-big", "websocket closed: a message over %s bytes (client %s)", limit, ip
                )
            return message

        return receive_and_log_too_big


class _LimitedView(Protocol):
    ws_limits: WebsocketLimits


def limits_of(view: object) -> WebsocketLimits:
    """The WebsocketLimits of the view a protocol handler serves."""
    return cast(_LimitedView, view).ws_limits


def operation_type(query: object, operation_name: object, max_tokens: int) -> OperationType | None:
    """The type of the operation a document runs; None when it cannot be parsed within the limits (its
    execution then says why). Raise CannotGetOperationTypeError when it holds no such operation."""
    if not isinstance(query, str):
        return None
    try:
        document = parse_limited(query, max_tokens)  # cached: the operation's own parse finds it there
    except (GraphQLError, QueryTooComplex):
        return None
    name = operation_name if isinstance(operation_name, str) else None
    try:
        return get_operation_type(document, name)
    except RuntimeError:
        raise CannotGetOperationTypeError(name) from None


def is_subscription(query: object, operation_name: object, max_tokens: int) -> bool:
    """Tell whether a document runs a subscription; one that cannot be read counts as one (the safe side)."""
    try:
        kind = operation_type(query, operation_name, max_tokens)
    except CannotGetOperationTypeError:
        return True
    return kind is OperationType.SUBSCRIPTION or (kind is None and isinstance(query, str))


def subscriber_of(principal: Principal, ip: str) -> str:
    """Whose subscriptions are counted together: the signed-in caller's, else its address's (`ip`)."""
    return principal.actor if principal.is_authenticated else f"ip:{ip}"


class ConnectionGuard:
    """What one websocket connection may do: how many operations, its caller's subscriptions, how long."""

    def __init__(self, limits: WebsocketLimits, context: Context) -> None:
        self.limits = limits
        self.context = context
        self.timers: list[asyncio.Task[None]] = []
        self.watching_expiry = False

    @property
    def client_ip(self) -> str:
        request = self.context.request
        return "unknown" if request is None else str(request.scope.get("state", {}).get(CLIENT_IP, "unknown"))

    def too_many_operations(self, active: int) -> dict[str, object] | None:
        """The error for one more operation when `active` already run; None when it may start."""
        cap = self.limits.settings.max_operations_per_connection
        if active < cap:
            return None
        self.log_refusal("ws-refused-operations", "an operation over %s on one connection", cap)
        refused("ws_operations")
        return error(TOO_MANY_OPERATIONS, f"At most {cap} operations may run at once on one connection.")

    def before_start(self, active: int, query: object, operation_name: object) -> dict[str, object] | None:
        """The error for an operation that cannot start (too many on this connection, or a subscription
        over its caller's cap); None when it may. Checked before its task exists: a burst of refused
        operations then costs no task each, and no turn of the event loop."""
        refusal = self.too_many_operations(active)
        if refusal is None and is_subscription(query, operation_name, self.limits.settings.max_query_tokens):
            if self.limits.subscriptions.held(self.subscriber) >= self.limits.subscriptions.per_key:
                refusal = self._too_many_subscriptions()
        return refusal

    @property
    def subscriber(self) -> str:
        """Whose subscriptions are counted: the signed-in caller's, else the client address's."""
        return subscriber_of(self.context.principal, self.client_ip)

    def _too_many_subscriptions(self) -> dict[str, object]:
        cap = self.limits.settings.max_subscriptions_per_user
        self.log_refusal("ws-refused-subscriptions", "a subscription over %s for %s", cap, self.subscriber)
        refused("ws_subscriptions")
        return error(TOO_MANY_SUBSCRIPTIONS, f"At most {cap} subscriptions may be live for one caller.")

    @contextmanager
    def subscription(self, query: object, operation_name: object) -> Iterator[dict[str, object] | None]:
        """Hold one of the caller's subscription slots while a subscription runs; yield the error if none."""
        if not is_subscription(query, operation_name, self.limits.settings.max_query_tokens):
            yield None
            return
        key, slots = self.subscriber, self.limits.subscriptions
        if slots.acquire(key) is not None:
            yield self._too_many_subscriptions()
            return
        try:
            yield None
        finally:
            slots.release(key)

    def log_refusal(self, kind: str, what: str, *args: object) -> None:
        self.limits.log.warning(kind, f"websocket refused {what} (client %s)", *args, self.client_ip)

    def log_close(self, kind: str, why: str) -> None:
        self.limits.log.warning(kind, "websocket closed: %s (client %s)", why, self.client_ip)

    def after(self, delay: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` in `delay` seconds unless the connection ends first."""

        async def later() -> None:
            await asyncio.sleep(max(delay, 0.0))
            try:
                await action()
            except Exception:  # the client may have gone meanwhile: nothing left to close
                logger.debug("websocket timer action failed", exc_info=True)

        self.timers.append(asyncio.create_task(later()))

    def watch_expiry(self, on_expired: Callable[[], Awaitable[None]]) -> None:
        """Call `on_expired` when the signed-in caller's token expires."""
        expires_at = self.context.principal.expires_at
        if expires_at is not None and not self.watching_expiry:
            self.watching_expiry = True
            self.after(expires_at - time.time(), on_expired)

    async def stop(self) -> None:
        """Cancel the timers; wait until they are done."""
        for timer in self.timers:
            timer.cancel()
        if self.timers:
            await asyncio.wait(self.timers)
        self.timers.clear()
