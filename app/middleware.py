"""The ASGI middleware every response passes through: a security header and a cap on requests in flight."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import ThrottledLogger

logger = logging.getLogger("bookworm.api")

NOSNIFF = (b"x-content-type-options", b"nosniff")
BUSY_MESSAGE = "The server is busy; retry in a moment."
BUSY_CODE = "SERVER_BUSY"
# The scope state entry of a function that stops counting the request as in flight: an HTTP stream calls
# it once it streams, since it then waits on changes, not on the process (the stream caps count it).
LEAVE_IN_FLIGHT = "leave_in_flight"
RETRY_AFTER_SECONDS = 1


class Guard:
    """What every response passes, in one layer (each layer costs every request a coroutine and every
    resumption a step): `X-Content-Type-Options: nosniff` on each HTTP response and websocket handshake
    refusal, so no browser guesses a type; and a fast 503 once `limit` HTTP requests are in flight in
    this process, instead of queueing.

    A queue without end only turns overload into latency for everyone; a 503 with Retry-After lets
    clients and load balancers back off or go elsewhere. Websockets are capped apart (per IP and in all).
    """

    def __init__(
        self, app: ASGIApp, limit: int, exempt: frozenset[str] = frozenset({"/healthz", "/metrics"})
    ) -> None:
        self.app = app
        self.limit = limit
        # Liveness must answer under load, or a supervisor restarts a busy process; metrics show the load.
        self.exempt = exempt
        self.in_flight = 0
        self.log = ThrottledLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message["headers"] = [*message.get("headers", []), NOSNIFF]
            await send(message)

        if kind != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send_with_headers)
            return
        if self.in_flight >= self.limit:
            await self._refuse(send_with_headers)
            return
        self.in_flight += 1
        counted = True

        def leave() -> None:
            nonlocal counted
            if counted:
                counted = False
                self.in_flight -= 1

        scope.setdefault("state", {})[LEAVE_IN_FLIGHT] = leave
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            leave()

    async def _refuse(self, send: Send) -> None:
        self.log.warning("busy", "%s requests in flight: answered 503", self.limit)  # args arrive as text
        body = json.dumps({"errors": [{"message": BUSY_MESSAGE, "extensions": {"code": BUSY_CODE}}]})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})
