"""What every context's subscriptions share: check where to resume, then stream a topic from the hub.

Over graphql-transport-ws, a subscription without `after` whose events are the same for every caller
joins a cohort (app/live/cohorts.py): the subscribers of one document, operation and variables share
one hub subscription, one execution and one encoded payload per change, which is sent straight to each
socket. The websocket handler names the operation being run (DIRECT) so a resolver can do this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, TypeVar

from graphql import DocumentNode, ExecutionResult, execute

from app.domain.errors import ValidationError
from app.live.cohorts import Render, Resume
from app.live.notices import ChangeNotice
from app.schema.context import Info
from app.schema.extensions import PublicErrors
from app.schema.output import cap_response
from app.schema.positions import BadCursor, Position, parse_cursor

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DirectOperation:
    """The websocket operation being run: what it asked, and how to send it one `next` payload."""

    query: str
    operation_name: str | None
    variables: dict[str, object] | None
    send: Callable[[str], Awaitable[None]]


DIRECT: ContextVar[DirectOperation | None] = ContextVar("bookworm_direct_operation", default=None)


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


async def notices(
    info: Info, topic: str, after: Position | None, after_entity: str | None = None
) -> AsyncGenerator[ChangeNotice, None]:
    """Yield the topic's notices; close the hub's iterator when the client goes away."""
    hub = info.context.container.hub
    stream: AsyncIterator[ChangeNotice] = (
        hub.subscribe(topic, after)
        if after_entity is None
        else hub.subscribe(topic, after, after_entity=after_entity)
    )
    try:
        async for notice in stream:
            yield notice
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def public_changes(
    info: Info, topic: str, after: Position | None, event: Callable[[ChangeNotice], T]
) -> AsyncGenerator[T, None]:
    """Yield `event(notice)` for the topic's notices; events that are the same for every caller.

    Without `after`, over graphql-transport-ws, the subscriber joins its cohort and its payloads are
    sent from there; if it falls behind, it goes on alone from the last one sent.
    """
    direct = DIRECT.get()
    resume: Resume | None = None
    if after is None and direct is not None:
        cohorts = info.context.container.hub.cohorts
        key = (topic, direct.query, direct.operation_name, _canonical(direct.variables))
        resume = await cohorts.follow(key, topic, renderer(info, direct, event), direct.send)
        if resume is None:
            return
    position, entity = (after, None) if resume is None else (resume.position, resume.entity_id)
    async for notice in notices(info, topic, position, entity):
        yield event(notice)


def renderer(info: Info, direct: DirectOperation, event: Callable[[ChangeNotice], Any]) -> Render:
    """Execute the operation for one notice and encode its `next` payload, as strawberry would."""
    raw = info._raw_info
    document = DocumentNode(definitions=(raw.operation, *raw.fragments.values()))
    schema = info.schema
    limit = info.context.container.settings.max_response_bytes

    async def render(notice: ChangeNotice) -> str:
        result = execute(
            raw.schema,
            document,
            root_value=event(notice),
            context_value=info.context,
            variable_values=direct.variables,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        payload: dict[str, object] = {"data": result.data}
        if result.errors:
            schema.process_errors(result.errors)
            public = PublicErrors()._process_errors(list(result.errors))
            payload["errors"] = [error.formatted for error in public]
        return cap_response(json.dumps(payload, separators=(",", ":")), payload, limit)

    return render


def _canonical(variables: dict[str, object] | None) -> str:
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
