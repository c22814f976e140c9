"""What every context's subscriptions share: check where to resume, then stream a topic from the hub.

Over graphql-transport-ws, a subscription without `after` whose events are the same for every caller
joins a cohort (app/live/cohorts.py): the subscribers of one document, operation and variables share
one hub subscription, one execution and one encoded payload per change, which is sent straight to each
socket (where the server lets us, written to its transport as a frame built once per change:
app/schema/wire.py). The websocket handler names the operation being run (DIRECT); once admitted, the
resolver hands the subscription back to it (a Handoff) and ends, so what strawberry and graphql-core
hold for a running subscription is freed: a member is its task, its queue and its cursor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, TypeVar

from graphql import DocumentNode, ExecutionResult, GraphQLError, execute
from strawberry.schema.base import BaseSchema

from app.domain.errors import ValidationError
from app.live.cohorts import Render, Wire
from app.live.hub import Hub
from app.live.notices import ChangeNotice, topic_kind
from app.metrics.instruments import delivered, subscription
from app.schema.context import Info
from app.schema.extensions import PublicErrors
from app.schema.output import cap_response, encode
from app.schema.positions import BadCursor, Position, parse_cursor

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Handoff:
    """A subscription the resolver admitted and handed back: its cohort, and how a notice is rendered."""

    hub: Hub
    key: Hashable
    topic: str
    render: Render


@dataclass(slots=True)
class DirectOperation:
    """The websocket operation being run: what it asked, and how to send it one `next` payload."""

    query: str
    operation_name: str | None
    variables: dict[str, object] | None
    send: Callable[[str], Awaitable[None]]
    wire: Wire | None = None  # its socket's transport, when frames can be written to it directly
    handoff: Handoff | None = None  # set by a resolver whose subscription the handler is to deliver


DIRECT: ContextVar[DirectOperation | None] = ContextVar("bookworm_direct_operation", default=None)
# Told the position a subscription starts after, once the hub has joined its topic: an HTTP stream
# answers its request then, so that a client that has the response's headers misses no change.
STARTED: ContextVar[Callable[[Position], None] | None] = ContextVar("bookworm_started", default=None)


def after_position(after: str | None) -> Position | None:
    """Parse the `after` argument; a malformed one is a clear error before anything is sent."""
    if after is None:
        return None
    try:
        return parse_cursor(after)
    except BadCursor:
        raise ValidationError.single("after", "Not a position Bookworm returned.") from None


async def resume_position(info: Info, after: str | None) -> Position | None:
    """Parse `after` and check its changes are still kept (else ResumeTooOld), before the stream starts."""
    position = after_position(after)
    if position is not None:
        await require_handed_out(info, position)
        await info.context.container.hub.check_resume(position)
    return position


async def require_handed_out(info: Info, position: Position) -> None:
    """Refuse a position beyond the newest event: the subscription would wait, silent, until it came."""
    if position > await info.context.container.event_store.newest():
        raise ValidationError.single("after", "Beyond the newest event: not a position Bookworm returned.")


async def notices(info: Info, topic: str, after: Position | None) -> AsyncGenerator[ChangeNotice, None]:
    """Yield the topic's notices; close the hub's iterator when the client goes away."""
    hub = info.context.container.hub
    stream: AsyncIterator[ChangeNotice] = hub.subscribe(topic, after, started=STARTED.get())
    kind = topic_kind(topic)
    try:
        with subscription(kind):
            async for notice in stream:
                delivered(kind)
                yield notice
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def public_changes(
    info: Info, topic: str, after: Position | None, event: Callable[[ChangeNotice], T]
) -> AsyncGenerator[T, None]:
    """Yield `event(notice)` for the topic's notices; events that are the same for every caller.

    Without `after`, over graphql-transport-ws, the subscription is handed back to the handler, which
    delivers it from its cohort (deliver()): this generator ends without yielding.
    """
    direct = DIRECT.get()
    if after is None and direct is not None:
        key = (topic, direct.query, direct.operation_name, _canonical(direct.variables))
        hub = info.context.container.hub
        direct.handoff = Handoff(hub, key, topic, renderer(info, direct, event))
        return
    async for notice in notices(info, topic, after):
        yield event(notice)


async def deliver(handoff: Handoff, send: Callable[[str], Awaitable[None]], wire: Wire | None = None) -> None:
    """Send a handed-off subscription's payloads until cancelled, or until the hub closes.

    From its cohort (through `wire` while it takes them); after an overflow, alone from the last one
    sent, through the hub's catch-up and `send`.
    """
    resume = await handoff.hub.cohorts.follow(handoff.key, handoff.topic, handoff.render, send, wire)
    if resume is None:
        return
    stream = handoff.hub.subscribe(
        handoff.topic, resume.position, after_entity=resume.entity_id, delivered=True
    )
    kind = topic_kind(handoff.topic)
    async with aclosing(stream):
        with subscription(kind):
            async for notice in stream:
                delivered(kind)
                await send(await handoff.render(notice))


def error_payload(schema: BaseSchema, error: Exception) -> str:
    """The `next` payload of an error that ended a subscription, as strawberry would send it."""
    errors = [GraphQLError(str(error), original_error=error)]
    schema.process_errors(errors)
    public = PublicErrors()._process_errors(errors)
    return json.dumps({"data": None, "errors": [e.formatted for e in public]}, separators=(",", ":"))


def renderer(info: Info, direct: DirectOperation, event: Callable[[ChangeNotice], Any]) -> Render:
    """Execute the operation for one notice and encode its `next` payload, as strawberry would."""
    raw = info._raw_info
    schema, graphql_schema, context = info.schema, raw.schema, info.context
    document = DocumentNode(definitions=(raw.operation, *raw.fragments.values()))
    variables, limit = direct.variables, context.container.settings.max_response_bytes

    async def render(notice: ChangeNotice) -> str:
        result = execute(
            graphql_schema,
            document,
            root_value=event(notice),
            context_value=context,
            variable_values=variables,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        payload: dict[str, object] = {"data": result.data}
        if result.errors:
            schema.process_errors(result.errors)
            public = PublicErrors()._process_errors(list(result.errors))
            payload["errors"] = [error.formatted for error in public]
        return cap_response(encode(payload), payload, limit)

    return render


def _canonical(variables: dict[str, object] | None) -> str:
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
