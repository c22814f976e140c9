"""HTTP streams without a server: how each protocol frames a stream, and a stream's life around a fake
operation (its opening, results, keep-alives, expiry and end)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from graphql import GraphQLError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from app.eventstore.position import Position
from app.queries import reads
from app.schema.http_streams import HTTPStream
from app.schema.stream_transports import SSE, Multipart, Transport
from app.schema.subscriptions import STARTED

RESULT = ExecutionResult(data={"catalogChanged": {"kind": "CREATED"}}, errors=None)
FAILURE = {"message": "The token has expired; sign in again.", "extensions": {"code": "UNAUTHENTICATED"}}


def encode(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


async def render(result: ExecutionResult) -> GraphQLHTTPResponse:
    return process_result(result)


def multipart_parts(body: str) -> list[Any]:
    """The JSON parts of a multipart/mixed body, read by the standard library's MIME parser."""
    head = b'Content-Type: multipart/mixed; boundary="graphql"\r\n\r\n'
    message = BytesParser(policy=HTTP).parsebytes(head + body.encode())
    assert message.is_multipart() and not message.defects, message.defects
    return [json.loads(part.get_payload()) for part in message.get_payload()]


def sse_events(body: str) -> list[tuple[str | None, str | None]]:
    """(event, data) of each block of an event stream; (None, None) for a comment."""
    events = []
    for block in body.split("\r\n\r\n")[:-1]:
        lines = [line.partition(":") for line in block.split("\r\n")]
        fields = {name: value.strip() for name, _, value in lines}
        events.append((fields.get("event"), fields.get("data")))
    return events


def test_an_event_stream_is_a_comment_then_next_events_then_complete() -> None:
    sse = SSE()
    body = sse.opening(encode) + sse.encode_next(process_result(RESULT), encode)
    body += sse.heartbeat_message(encode) + sse.encode_complete()

    assert sse_events(body) == [
        (None, None),
        ("next", encode({"data": RESULT.data})),
        (None, None),
        ("complete", ""),
    ]


def test_a_fatal_error_over_sse_is_a_next_event_with_the_error_then_complete() -> None:
    assert sse_events(SSE().fatal(FAILURE, encode)) == [
        ("next", encode({"errors": [FAILURE]})),
        ("complete", ""),
    ]


def test_a_multipart_stream_is_valid_mime_with_payload_parts_and_empty_keep_alives() -> None:
    multipart = Multipart()
    body = multipart.opening(encode) + multipart.encode_next(process_result(RESULT), encode)
    body += multipart.heartbeat_message(encode) + multipart.fatal(FAILURE, encode)

    assert multipart_parts(body) == [
        {},
        {"payload": {"data": RESULT.data}},
        {},
        {"payload": None, "errors": [FAILURE]},
    ]
    assert multipart.headers["Content-Type"] == 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"'


def test_each_transport_answers_the_accept_header_its_clients_send() -> None:
    assert SSE().accepts("text/event-stream")
    assert Multipart().accepts("multipart/mixed;subscriptionSpec=1.0,application/json")
    assert Multipart().accepts(
        'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0", application/json'
    )
    assert not Multipart().accepts("multipart/mixed;deferSpec=20220824,application/json")
    assert not SSE().accepts("application/json")


def stream_of(
    results: AsyncGenerator[object, None], transport: Transport | None = None, expires_at: float | None = None
) -> HTTPStream:
    return HTTPStream(results, transport or SSE(heartbeat_interval=0.05), render, encode, expires_at)


async def live_then(
    *results: ExecutionResult, wait: asyncio.Event | None = None
) -> AsyncGenerator[object, None]:
    """What the hub does for a subscription: say it has started, then deliver."""
    started = STARTED.get()
    assert started is not None
    started(Position(1, 1))
    if wait is not None:
        await wait.wait()
    for result in results:
        yield result


async def chunks(stream: HTTPStream) -> list[str]:
    async with asyncio.timeout(5):
        return [chunk async for chunk in stream]


async def test_a_stream_opens_when_its_subscription_is_live_and_sends_what_comes_then_completes() -> None:
    go = asyncio.Event()
    stream = stream_of(live_then(RESULT, wait=go))

    assert await stream.open() is None  # live, nothing delivered yet
    go.set()
    events = sse_events("".join(await chunks(stream)))
    await stream.close()

    assert [event for event, _ in events if event is not None] == ["next", "complete"]


async def test_a_request_error_is_returned_by_open_and_nothing_is_streamed() -> None:
    async def refused() -> AsyncGenerator[object, None]:
        raise GraphQLError("Syntax Error: Expected Name, found <EOF>.")
        yield  # pragma: no cover

    closed: list[bool] = []
    stream = stream_of(refused())
    stream.on_closed = lambda: closed.append(True)

    error = await stream.open()
    await stream.close()
    await stream.close()

    assert error is not None and error.errors and "Syntax Error" in error.errors[0].message
    assert closed == [True]  # given back once


async def test_an_idle_stream_sends_keep_alives_and_ends_with_an_error_when_its_token_expires() -> None:
    expired: list[bool] = []
    stream = stream_of(live_then(wait=asyncio.Event()), expires_at=time.time() + 0.3)
    stream.on_expired = lambda: expired.append(True)

    assert await stream.open() is None
    events = sse_events("".join(await chunks(stream)))
    await stream.close()

    comments = [event for event in events if event == (None, None)]
    assert len(comments) >= 2  # the opening one and at least one keep-alive
    assert events[-2:] == [("next", encode({"errors": [FAILURE]})), ("complete", "")]
    assert expired == [True]


async def test_closing_a_stream_ends_its_operation() -> None:
    ended = asyncio.Event()

    async def forever() -> AsyncGenerator[object, None]:
        try:
            async for result in live_then(wait=asyncio.Event()):
                yield result
        finally:
            ended.set()

    stream = stream_of(forever())
    assert await stream.open() is None
    await stream.close()

    assert ended.is_set()


async def test_an_operation_that_fails_ends_its_stream_with_an_error(caplog: Any) -> None:
    async def failing() -> AsyncGenerator[object, None]:
        async for result in live_then():
            yield result
        raise RuntimeError("a bug")

    stream = stream_of(failing(), Multipart())
    assert await stream.open() is None
    parts = multipart_parts("".join(await chunks(stream)))
    await stream.close()

    assert parts[-1]["payload"] is None
    assert parts[-1]["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "an operation streamed over HTTP failed" in caplog.text


async def test_an_ended_stream_stops_without_a_completion_so_that_its_client_reconnects() -> None:
    stream = stream_of(live_then(wait=asyncio.Event()))
    assert await stream.open() is None

    stream.end()
    events = sse_events("".join(await chunks(stream)))
    await stream.close()

    assert events == [(None, None)]  # the opening comment, then the end of the body: no `complete`


async def test_what_a_stream_reads_is_not_recorded_for_its_request_s_cached_answer() -> None:
    async def reading() -> AsyncGenerator[object, None]:
        reads.read_rows(reads.BOOK, ["b1"])
        async for result in live_then(RESULT):
            yield result

    tags: set[str] = set()
    reads.record(tags)  # as the view does for a request whose answer may be kept
    stream = stream_of(reading())
    assert await stream.open() is None
    await chunks(stream)
    await stream.close()
    reads.stop_recording()

    assert tags == set()
