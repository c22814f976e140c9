"""Frames written straight to uvicorn's transport: read back by a real client, refused when not safe.

A real uvicorn server in this process (the websocket protocol `bookworm serve` runs) and a real client;
no database or Redis.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import uvicorn
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from app.eventstore.position import Position
from app.live.cohorts import Frame
from app.schema.wire import PROTOCOL, ExposeProtocol, SocketWire, text_frame

WAIT = 10.0
HEAD = '{"id":"7","type":"next","payload":'
RECEIVE_BUFFER = 4096  # bytes: the stalled client's kernel buffer, so the server's transport fills soon


def frame(number: int, size: int = 10) -> Frame:
    payload = json.dumps({"data": {"n": number, "pad": "x" * size}}, separators=(",", ":"))
    return Frame(Position(number, number), f"e{number}", payload, payload.encode())


def parse(data: bytes) -> WireFrame:
    """Read one frame as a client does: a server's frames are unmasked."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WireFrame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        parsed: WireFrame = done.value
        return parsed
    raise AssertionError("the frame is incomplete")


def test_text_frames_of_each_length_encoding_parse_back() -> None:
    for length in (0, 125, 126, 65535, 65536, 70000):
        data = b"a" * length
        encoded = text_frame(data)
        parsed = parse(encoded)
        assert (parsed.opcode, parsed.fin, parsed.data) == (Opcode.TEXT, True, data)
        assert encoded[0] == 0x81 and not encoded[1] & 0x80  # FIN, text, no mask bit
        assert len(encoded) - length == (2 if length < 126 else 4 if length < 65536 else 10)


async def test_another_servers_socket_gets_no_wire() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    await ExposeProtocol(app)({"type": "websocket"}, receive, send)
    assert PROTOCOL not in seen[0]
    assert SocketWire.of(seen[0], HEAD, SimpleNamespace(completed=False)) is None


@dataclass
class Server:
    """A uvicorn server whose websocket app keeps each socket's scope until told to close it."""

    port: int = 0
    scopes: asyncio.Queue[Scope] = field(default_factory=asyncio.Queue)
    close: asyncio.Event = field(default_factory=asyncio.Event)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        self.scopes.put_nowait(scope)
        await self.close.wait()
        await send({"type": "websocket.close", "code": 1000})

    def wire(self, scope: Scope, completed: bool = False) -> SocketWire:
        wire = SocketWire.of(scope, HEAD, SimpleNamespace(completed=completed))
        assert wire is not None, "uvicorn's protocol is not in the scope"
        return wire


@asynccontextmanager
async def server() -> AsyncIterator[Server]:
    running = Server()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        running.port = listener.getsockname()[1]
        config = uvicorn.Config(ExposeProtocol(running.app), lifespan="off", log_level="warning")
        served = uvicorn.Server(config)
        task = asyncio.create_task(served.serve(sockets=[listener]))
        try:
            async with asyncio.timeout(WAIT):
                while not served.started:  # noqa: ASYNC110 (uvicorn has a flag, no event)
                    await asyncio.sleep(0.01)
            yield running
        finally:
            running.close.set()
            served.should_exit = True
            await task


def payloads(messages: list[str | bytes]) -> list[Any]:
    decoded = [json.loads(message) for message in messages]
    assert {(m["id"], m["type"]) for m in decoded} == {("7", "next")}
    return [m["payload"]["data"]["n"] for m in decoded]


async def test_frames_of_every_length_arrive_whole_and_in_order() -> None:
    async with server() as running, connect(f"ws://127.0.0.1:{running.port}/") as client:
        # permessage-deflate was agreed (both ends' default): a frame without RSV1 is simply not compressed
        assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
        scope = await asyncio.wait_for(running.scopes.get(), WAIT)
        wire = running.wire(scope)
        sizes = [10, 200, 70_000, 10, 65_000]
        assert all(wire.write(frame(n, size)) for n, size in enumerate(sizes))
        received = [await asyncio.wait_for(client.recv(), WAIT) for _ in sizes]
        assert payloads(received) == list(range(len(sizes)))
        assert [len(json.loads(r)["payload"]["data"]["pad"]) for r in received] == sizes


async def test_a_closing_socket_or_a_completed_operation_is_never_written() -> None:
    async with server() as running, connect(f"ws://127.0.0.1:{running.port}/") as client:
        scope = await asyncio.wait_for(running.scopes.get(), WAIT)
        assert not running.wire(scope, completed=True).write(frame(1))
        running.close.set()
        await asyncio.wait_for(client.wait_closed(), WAIT)
        assert not running.wire(scope).write(frame(2))


async def test_a_stalled_reader_is_refused_past_the_high_water_mark_then_taken_again() -> None:
    async with server() as running:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", running.port))
        async with connect(f"ws://127.0.0.1:{running.port}/", sock=sock, max_queue=1) as client:
            scope = await asyncio.wait_for(running.scopes.get(), WAIT)
            wire, transport = running.wire(scope), scope[PROTOCOL].transport
            high = transport.get_write_buffer_limits()[1]
            written = 0
            while wire.write(frame(written, 1000)):
                written += 1
                assert transport.get_write_buffer_size() <= high + 2000
                assert written < 10_000, "the wire never refused"
                await asyncio.sleep(0)  # the transport sends what the kernel takes
            assert transport.get_write_buffer_size() > high - 2000

            received = [await asyncio.wait_for(client.recv(), WAIT) for _ in range(written)]
            assert payloads(received) == list(range(written))
            assert wire.write(frame(written))  # drained: taken again
            assert payloads([await asyncio.wait_for(client.recv(), WAIT)]) == [written]


def test_the_length_fields_are_network_order() -> None:
    assert text_frame(b"a" * 300)[:4] == bytes([0x81, 126]) + struct.pack("!H", 300)
    assert text_frame(b"a" * 70000)[:10] == bytes([0x81, 127]) + struct.pack("!Q", 70000)
