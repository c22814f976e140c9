"""The ASGI middleware: the count of requests in flight, and a request that stops counting (a stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.middleware import LEAVE_IN_FLIGHT, InFlightLimit


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

    limit = InFlightLimit(stream, limit=1)
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

    await InFlightLimit(app, limit=0)({"type": "http", "path": "/graphql"}, receive, send)

    assert sent[0]["status"] == 503
    assert [record.getMessage() for record in caplog.records] == ["0 requests in flight: answered 503"]
