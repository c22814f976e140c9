"""uvicorn's HTTP protocol, writing a response's head and the start of its body to the socket in one write.

uvicorn writes the status line and headers as the app sends `http.response.start`, then the body as it
sends `http.response.body`: two writes, so two system calls and two TCP segments for every answer of a
few hundred bytes, where one would do. Here each response's head waits for the response's next write,
or for the end of the loop's current turn at the latest (a stream's first event may be minutes away, and
its client waits for the head), and goes out with it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (what `http="auto"` picks), each response's head written with its body."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new request's cycle, not started yet (an upgrade to a websocket makes none): it writes through
        # the head-holding transport from its first write on.
        if cycle is not None and cycle is not before:
            cycle.transport = HeadWithBody(cycle.transport, self.loop)  # type: ignore[assignment]


class HeadWithBody:
    """One response's transport: its first write (the head) is held until its next, or this turn's end."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = b""  # b"": nothing written yet; None: the head has gone

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._transport.write(data)
        elif held:
            self._held = None
            self._transport.write(held + data)
        else:
            self._held = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the head now if it is still held."""
        held = self._held
        if held:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()
