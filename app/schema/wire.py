"""A cohort member's socket written to directly: one encoded websocket frame per change, no ASGI send.

Through ASGI each `next` goes down Starlette's and uvicorn's `websocket.send`, which builds the frame
again for every socket. uvicorn's websockets-sansio protocol (what `bookworm serve` runs: `ws="auto"`
with the websockets library installed) owns the transport, so a frame built once per change and
operation id can go to each member's transport in one write. `SocketWire.write` refuses (and the member
queues, then sends through ASGI as before) whenever that would not be safe: the transport is past its
high-water mark or closing, the protocol sent or received a close, or the operation completed.

`ExposeProtocol`, outermost, puts the server's protocol object in the scope (`PROTOCOL`); another server
or protocol implementation has no `SocketWire`, and every frame takes the ASGI path.
"""

from __future__ import annotations

import struct
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.protocol import State

from app.live.cohorts import Frame

PROTOCOL = "bookworm.websocket_protocol"  # the scope key of the server's websocket protocol object
# The protocol classes whose state SocketWire reads (tests/unit/test_upgrade_contracts.py checks them).
SUPPORTED = frozenset({"uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol"})
TEXT_FIN = 0x81  # FIN and the text opcode; a server's frames are not masked (RFC 6455, 5.1)


class ExposeProtocol:
    """Put uvicorn's websocket protocol object (the owner of the `send` it calls us with) in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            if protocol is not None and _qualified_name(type(protocol)) in SUPPORTED:
                scope[PROTOCOL] = protocol
        await self.app(scope, receive, send)


def forget_handshake(scope: Scope) -> None:
    """Drop the handshake's request and response, which uvicorn keeps but never reads once accepted.

    Their headers are about 4 KiB of each idle socket's 35 (the scope keeps the request's). The websockets
    library's parser still holds the request (a local of its generator), so its headers are emptied in
    place: 2.4 KiB less per idle socket again (bench/README.md, "The handshake's headers").
    """
    protocol = scope.get(PROTOCOL)
    if protocol is not None and protocol.handshake_complete:
        for message in (protocol.request, protocol.response):
            if message is not None:  # read by no one now: the scope has its own copy of the headers
                message.headers.clear()
        protocol.request = protocol.response = None


def text_frame(data: bytes) -> bytes:
    """An unmasked, unfragmented websocket text frame of `data` (RFC 6455, 5.2)."""
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", TEXT_FIN, length)
    elif length < 65536:
        head = struct.pack("!BBH", TEXT_FIN, 126, length)
    else:
        head = struct.pack("!BBQ", TEXT_FIN, 127, length)
    return head + data


class SocketWire:
    """One operation's `next` frames, written straight to its socket's transport when it takes them."""

    __slots__ = ("_head", "_operation", "_protocol")

    def __init__(self, protocol: Any, head: str, operation: Any) -> None:
        self._protocol = protocol
        self._head = head.encode()  # the `next` message up to its payload: {"id":"1","type":"next","payload":
        self._operation = operation  # strawberry's Operation: `completed` once the client ended it

    @classmethod
    def of(cls, scope: Scope, head: str, operation: Any) -> SocketWire | None:
        """The wire of the socket `scope` describes, or None where frames must go through ASGI."""
        protocol = scope.get(PROTOCOL)
        return None if protocol is None else cls(protocol, head, operation)

    def write(self, frame: Frame) -> bool:
        """Write `frame`'s `next` message now and return True, or return False: it must be queued."""
        protocol = self._protocol
        transport = protocol.transport
        if (
            not protocol.writable.is_set()  # paused: the transport's buffer is past its high-water mark
            or protocol.close_sent
            or protocol.conn.state is not State.OPEN  # a close was received, or the connection failed
            or transport.is_closing()
            or self._operation.completed
        ):
            return False
        encoded = frame.wire.get(self._head)
        if encoded is None:
            encoded = frame.wire[self._head] = text_frame(b"".join((self._head, frame.data, b"}")))
        transport.write(encoded)
        return True


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
