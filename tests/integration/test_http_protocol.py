"""The API's HTTP protocol (app/http_protocol.py) answers as uvicorn's own, over a real socket.

Each response's head is held for its body's first write: a plain answer, a stream whose first chunk comes
much later, a HEAD request, pipelined and keep-alive requests, `Expect: 100-continue` and a closing
connection must all arrive as they would without the hold.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import Receive, Scope, Send

from app.http_protocol import HttpProtocol

WAIT = 5.0


class App:
    """`/plain` answers its request's body back; `/stream` sends its head, then a chunk once released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"late", "more_body": False})
            return
        answer = b"echo:" + body
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def server() -> AsyncIterator[tuple[App, int]]:
    app = App()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = uvicorn.Config(
            app, http=HttpProtocol, lifespan="off", log_level="warning", timeout_graceful_shutdown=WAIT
        )
        served = uvicorn.Server(config)
        task = asyncio.create_task(served.serve(sockets=[listener]))
        try:
            async with asyncio.timeout(WAIT):
                while not served.started:  # noqa: ASYNC110 (uvicorn has a flag, no event)
                    await asyncio.sleep(0.01)
            yield app, port
        finally:
            app.release.set()
            served.should_exit = True
            await task


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


def request(method: str, path: str, body: bytes = b"", *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One response: its status line, headers and (content-length) body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status, *lines = head.decode().strip().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    length = int(headers.get("content-length", "0"))
    return status.encode(), headers, await asyncio.wait_for(reader.readexactly(length), WAIT)


async def test_plain_answers_arrive_whole_on_a_kept_alive_and_pipelined_connection() -> None:
    async with server() as (_, port), connection(port) as (reader, writer):
        writer.write(request("POST", "/plain", b"one"))
        status, headers, body = await answer(reader)
        del headers["date"]
        expected = {"content-type": "text/plain", "content-length": "8", "server": "uvicorn"}
        assert (status, headers, body) == (b"HTTP/1.1 200 OK", expected, b"echo:one")
        writer.write(request("POST", "/plain", b"two") + request("POST", "/plain", b"three"))
        assert [(await answer(reader))[2] for _ in range(2)] == [b"echo:two", b"echo:three"]
        writer.write(request("HEAD", "/plain"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)  # HEAD: a head, no body
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5\r\n" in head
        writer.write(request("POST", "/plain", b"four", "connection: close"))
        assert (await answer(reader))[2] == b"echo:four"
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # and then the server closed it


async def test_a_streams_head_arrives_before_its_first_chunk() -> None:
    async with server() as (app, port), connection(port) as (reader, writer):
        writer.write(request("GET", "/stream"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
        app.release.set()
        assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), WAIT) == b"4\r\nlate\r\n0\r\n\r\n"


async def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body() -> None:
    async with server() as (_, port), connection(port) as (reader, writer):
        writer.write(
            request("POST", "/plain", b"", "expect: 100-continue").replace(b"length: 0", b"length: 4")
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"late")
        assert (await answer(reader))[2] == b"echo:late"
