"""The websocket caps' bookkeeping: slots per key and in all, the handshake refusal, subscriptions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types.graphql import OperationType

from app.schema.websocket_limits import Slots, WebsocketLimits, is_subscription, operation_type
from app.settings import Settings


def test_slots_cap_each_key_and_all_keys() -> None:
    slots = Slots(per_key=2, total=3)

    granted = [slots.acquire("a"), slots.acquire("a"), slots.acquire("a"), slots.acquire("b")]
    full = slots.acquire("c")
    slots.release("a")

    assert granted == [None, None, "per_key", None] and full == "total"
    assert (slots.held("a"), slots.held("b"), slots.held()) == (1, 1, 2)
    assert slots.acquire("c") is None


def test_releasing_more_than_was_held_changes_nothing() -> None:
    slots = Slots(per_key=1)
    slots.release("never")
    assert slots.held() == 0 and slots.acquire("never") is None


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("subscription { catalogChanged { kind } }", None, True),
        ("{ books { totalCount } }", None, False),
        ("mutation { x }", None, False),
        ("query A { a } subscription B { b }", "B", True),
        ("query A { a } subscription B { b }", "A", False),
        ("{ unclosed", None, True),  # unreadable: counted, the safe side
        (None, None, False),  # not a document: strawberry refuses it anyway
    ],
)
def test_is_subscription(query: object, name: str | None, expected: bool) -> None:
    assert is_subscription(query, name, max_tokens=100) is expected


def test_a_document_over_the_token_limit_counts_as_a_subscription() -> None:
    query = "{ " + "a " * 200 + "}"
    assert is_subscription(query, None, max_tokens=100)


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("subscription { catalogChanged { kind } }", None, OperationType.SUBSCRIPTION),
        ("query A { a } mutation B { b }", "B", OperationType.MUTATION),
        ("{ unclosed", None, None),  # unreadable: its execution says why
        (None, None, None),
    ],
)
def test_operation_type(query: object, name: str | None, expected: OperationType | None) -> None:
    assert operation_type(query, name, max_tokens=100) is expected


def test_an_operation_name_the_document_does_not_hold_is_an_error() -> None:
    with pytest.raises(CannotGetOperationTypeError):
        operation_type("query A { a }", "B", max_tokens=100)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.sent.append(message)


async def never_receive() -> Message:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


def handshake(client: str, **extra: Any) -> Scope:
    return {"type": "websocket", "client": (client, 1234), "headers": [], **extra}


async def hold_open(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(3600)


async def test_the_handshake_over_the_cap_is_refused_and_a_closed_one_is_counted_back() -> None:
    limits = WebsocketLimits(Settings(max_ws_connections_per_ip=1, max_ws_connections=10))
    held = asyncio.create_task(limits.serve(handshake("10.0.0.1"), never_receive, Recorder(), hold_open))
    await asyncio.sleep(0)
    with_extension, without = Recorder(), Recorder()
    denial = handshake("10.0.0.1", extensions={"websocket.http.response": {}})
    await limits.serve(denial, never_receive, with_extension, hold_open)
    await limits.serve(handshake("10.0.0.1"), never_receive, without, hold_open)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held

    start, body = with_extension.sent
    assert start["status"] == 429 and (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"])["errors"][0]["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
    assert [m["type"] for m in without.sent] == ["websocket.close"] and without.sent[0]["code"] == 1008
    assert limits.connections.held() == 0
