"""Cohorts: subscribers that would receive the same bytes share one hub subscription and one rendering.

A cohort is keyed by what its members' frames depend on (the topic, and the document, operation and
variables that render a notice: see app/schema/subscriptions.py). Its leader task follows the topic in
the hub once and renders each notice once, to the encoded payload of a `next` message; every member
gets that same string in its own bounded queue, and its own task sends it. The leader only appends,
so a slow member never delays the others. A member with a wire (its socket, written to without
suspending: app/schema/wire.py) is written to by the leader itself while its queue is empty and its
socket takes the frame at once; otherwise the frame is queued as above, and once a frame is queued the
later ones follow it through the queue until it has drained, so each member's order holds.

A member whose queue overflows leaves the cohort and resumes on its own from the last frame it sent,
through the hub's catch-up (read.changes): nothing is lost, nothing is sent twice. A member that
joins receives every frame rendered from then on, so it follows the topic from the moment it joined,
as a subscriber of its own would.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from app import tracing
from app.eventstore.position import Position
from app.live.notices import ChangeNotice, topic_kind
from app.metrics.instruments import delivered, subscription

if TYPE_CHECKING:
    from app.live.hub import Hub

log = logging.getLogger(__name__)

Render = Callable[[ChangeNotice], Awaitable[str]]  # a notice to the encoded payload of its `next`
Send = Callable[[str], Awaitable[None]]  # sends one encoded payload to one member's client


@dataclass(frozen=True, slots=True)
class Frame:
    """One rendered notice: where it is in the topic, and the payload every member sends."""

    position: Position
    entity_id: str
    payload: str
    data: bytes  # the payload, UTF-8
    wire: dict[bytes, bytes] = field(default_factory=dict)  # encoded websocket frames, by message head


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a member that left its cohort goes on from: after `entity_id` at `position` (or all of it)."""

    position: Position
    entity_id: str | None


class Wire(Protocol):
    """A member's socket, written to without suspending."""

    def write(self, frame: Frame) -> bool:
        """Write `frame` now and return True, or return False if it must wait in the member's queue."""


class Member:
    """One subscriber in a cohort: its bounded queue of frames and the last one it sent."""

    __slots__ = ("_wake", "cursor", "ended", "error", "frames", "overflowed", "size", "wire")

    def __init__(self, size: int, cursor: Resume | None, wire: Wire | None) -> None:
        self.size = size
        self.wire = wire
        # The first is being sent while the member's task awaits. Made when first needed: a member whose
        # wire takes every frame never queues one, and an empty deque costs 624 bytes.
        self.frames: deque[Frame] | None = None
        self.cursor: Frame | Resume | None = cursor  # the last frame sent; None until the start is known
        self.overflowed = False
        self.ended = False
        self.error: BaseException | None = None
        self._wake: asyncio.Future[None] | None = None

    def offer(self, frame: Frame) -> bool:
        """Send or queue a frame (return whether it was); a full queue marks the member to catch up."""
        if self.overflowed:
            return False
        if not self.frames and self.wire is not None and self.wire.write(frame):
            self.cursor = frame
            return True
        if self.frames is None:
            self.frames = deque()
        queued = len(self.frames) < self.size
        if queued:
            self.frames.append(frame)
        else:
            self.overflowed = True
            self.frames = None  # read again from read.changes, after the last one sent
        self.wake()
        return queued

    def end(self, error: BaseException | None) -> None:
        self.ended, self.error = True, error
        self.wake()

    def wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait(self) -> None:
        if self.frames or self.overflowed or self.ended:
            return
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None


@dataclass(eq=False)
class Cohort:
    """The members of one key, and the leader that renders the topic's notices for them."""

    topic: str
    render: Render
    members: set[Member] = field(default_factory=set)
    cursor: Resume | None = None  # the last frame rendered, or where the leader's subscription began
    leader: asyncio.Task[None] | None = None
    executions: int = 0  # notices rendered: one per notice, however many members

    def started(self, position: Position) -> None:
        self.cursor = Resume(position, None)
        for member in self.members:
            if member.cursor is None:
                member.cursor = self.cursor

    def offer(self, frame: Frame) -> int:
        """Send or queue a frame for every member; return for how many it was."""
        self.cursor = Resume(frame.position, frame.entity_id)
        queued = 0
        for member in self.members:
            queued += member.offer(frame)
        # Written: what a queue holds is the payload. Kept, one frame per operation id would stay with
        # every member's cursor until the next change (clients that number operations by UUID).
        frame.wire.clear()
        return queued


class Cohorts:
    """This process's cohorts, by key."""

    def __init__(self, hub: Hub, queue_size: int) -> None:
        self._hub = hub
        self._queue_size = queue_size
        self._cohorts: dict[Hashable, Cohort] = {}

    def __len__(self) -> int:
        return len(self._cohorts)

    def get(self, key: Hashable) -> Cohort | None:
        """The cohort of `key`, if it has members (tests and benchmarks look at it)."""
        return self._cohorts.get(key)

    async def follow(
        self, key: Hashable, topic: str, render: Render, send: Send, wire: Wire | None = None
    ) -> Resume | None:
        """Send the cohort's frames until cancelled; return where to resume alone after an overflow.

        `wire`: the member's socket, which the leader writes to while it takes frames at once (else
        they are queued and sent with `send`). Return None when the cohort ended (the hub closed);
        raise what ended the leader's subscription.
        """
        cohort = self._cohorts.get(key)
        if cohort is None:
            cohort = self._cohorts[key] = Cohort(topic, render)
            cohort.leader = asyncio.create_task(self._lead(key, cohort), name=f"cohort {topic}")
        member = Member(self._queue_size, cohort.cursor, wire)
        cohort.members.add(member)
        try:
            with subscription(topic_kind(topic)):
                return await self._deliver(member, send)
        finally:
            self._leave(key, cohort, member)

    async def _deliver(self, member: Member, send: Send) -> Resume | None:
        while True:
            await member.wait()
            if member.overflowed:
                cursor = member.cursor
                return None if cursor is None else Resume(cursor.position, cursor.entity_id)
            if member.frames:
                # Left in the queue while it is sent, so the leader does not write the next one first.
                frame = member.frames[0]
                await send(frame.payload)
                if member.frames:  # not dropped by an overflow meanwhile
                    member.frames.popleft()
                member.cursor = frame
            elif member.ended:
                if member.error is not None:
                    raise member.error
                return None

    def _leave(self, key: Hashable, cohort: Cohort, member: Member) -> None:
        cohort.members.discard(member)
        if cohort.members or self._cohorts.get(key) is not cohort:
            return
        del self._cohorts[key]
        if cohort.leader is not None:
            cohort.leader.cancel()

    async def _push(self, cohort: Cohort, notice: ChangeNotice) -> bool:
        """Render `notice` once and queue it for every member; return False once no member is left."""
        attributes: tracing.Attributes = {
            "bookworm.topic": cohort.topic,
            "bookworm.members": len(cohort.members),
        }
        with tracing.span("push cohort", parent=notice.traceparent, attributes=attributes):
            payload = await cohort.render(notice)
            if not cohort.members:
                return False
            cohort.executions += 1
            queued = cohort.offer(Frame(notice.position, notice.entity_id, payload, payload.encode()))
            delivered(topic_kind(cohort.topic), queued)
        return True

    async def _lead(self, key: Hashable, cohort: Cohort) -> None:
        error: BaseException | None = None
        try:
            async for notice in self._hub.subscribe(cohort.topic, started=cohort.started):
                if not await self._push(cohort, notice):
                    return  # its cancellation may have been lost in the execution (Python 3.11's wait_for)
        except asyncio.CancelledError:
            raise
        except Exception as failure:
            error = failure
        finally:
            if self._cohorts.get(key) is cohort:
                del self._cohorts[key]
            for member in cohort.members:
                member.end(error)
