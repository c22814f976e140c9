"""GET /metrics of a `bookworm worker` run apart (`bookworm worker --metrics-port PORT`).

Under `bookworm serve` the worker writes its metrics where the API processes read them, so the API's
/metrics has them. A worker run on its own (`serve --no-workers` elsewhere, as in compose.yaml) has no
API beside it: this answers its own recorded metrics (the commands its process managers run, the events
they append, the events it parks, its pool). The lag and dead-letter figures are not repeated here: the
API's /metrics reads them from PostgreSQL, wherever the workers run.

A scrape is one small request, so this is a plain HTTP/1.0 responder, not a web framework: a request
head of at most HEAD_LIMIT bytes, read within TIMEOUT seconds, at most CONNECTIONS at once (one more is
closed unanswered), one answer per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics.endpoint import exposition

HEAD_LIMIT = 8_192
TIMEOUT = 5.0
CONNECTIONS = 8


@asynccontextmanager
async def metrics_server(host: str, port: int) -> AsyncIterator[asyncio.Server]:
    """Answer GET /metrics on host:port while the block runs."""
    turns = asyncio.Semaphore(CONNECTIONS)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if turns.locked():
            writer.close()
            return
        async with turns:
            try:
                async with asyncio.timeout(TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                    status, body, media_type = await _respond(head)
                    writer.write(_message(status, body, media_type))
                    await writer.drain()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # a client that says nothing, too much or goes away gets nothing more
            finally:
                writer.close()

    server = await asyncio.start_server(answer, host, port, limit=HEAD_LIMIT)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def _respond(head: bytes) -> tuple[str, bytes, str]:
    method, _, rest = head.partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    if target != b"/metrics":
        return "404 Not Found", b"Not found: this port answers GET /metrics only.\n", "text/plain"
    if method != b"GET":
        return "405 Method Not Allowed", b"GET /metrics only.\n", "text/plain"
    return "200 OK", await asyncio.to_thread(exposition, []), CONTENT_TYPE_LATEST


def _message(status: str, body: bytes, media_type: str) -> bytes:
    head = f"HTTP/1.0 {status}\r\nContent-Type: {media_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body
