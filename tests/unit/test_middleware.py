"""The ASGI middleware: the count of requests in flight, a request that stops counting (a stream), and the
header every response carries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.middleware import LEAVE_IN_FLIGHT, NOSNIFF, Guard


async def receive() -> Message:
    return {"type": "http.disconnect"}


async def test_a_request_that_leaves_the_count_frees_its_place_once() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        leave: Callable[[], None] = scope["state"][LEAVE_IN_FLIGHT]
        leave()
        leave()  # leaving twice frees one place only
        entered.set()
        await release.wait()

    async def send(message: Message) -> None:
        pass

    limit = Guard(stream, limit=1)
    running = asyncio.create_task(limit({"type": "http", "path": "/graphql"}, receive, send))
    await entered.wait()
    during = limit.in_flight
    release.set()
    await running

    assert (during, limit.in_flight) == (0, 0)


async def test_a_request_past_the_limit_is_answered_503_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a refused request must not reach the app")

    async def send(message: Message) -> None:
        sent.append(message)

    await Guard(app, limit=0)({"type": "http", "path": "/graphql"}, receive, send)

    assert sent[0]["status"] == 503
    assert NOSNIFF in sent[0]["headers"]
    assert [record.getMessage() for record in caplog.records] == ["0 requests in flight: answered 503"]


async def test_every_response_and_handshake_refusal_carries_nosniff_and_other_messages_pass_as_sent() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = "websocket.http.response" if scope["type"] == "websocket" else "http.response"
        await send({"type": f"{kind}.start", "status": 403, "headers": [(b"x-a", b"1")]})
        await send({"type": f"{kind}.body", "body": b"no"})

    async def send(message: Message) -> None:
        sent.append(message)

    guard = Guard(app, limit=1)
    for scope in (
        {"type": "http", "path": "/graphql"},
        {"type": "http", "path": "/healthz"},  # exempt from the count, not from the header
        {"type": "websocket", "path": "/graphql"},
    ):
        await guard(scope, receive, send)

    starts = [m["headers"] for m in sent if m["type"].endswith("start")]
    assert starts == [[(b"x-a", b"1"), NOSNIFF]] * 3
    assert [m["body"] for m in sent if m["type"].endswith("body")] == [b"no"] * 3
    assert guard.in_flight == 0
