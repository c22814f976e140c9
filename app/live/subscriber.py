"""One local subscriber of the hub: its bounded queue of live notices, how far it has read, and the page
of caught-up changes the shared catch-up handed it.

A subscriber is live (notices are queued for it) or lagging (notices are dropped: read.changes has
them, and a catch-up will read them). A lagging subscriber asks the catch-up reader for a page once it
has delivered the page it holds; the reader serves many subscribers with one read per topic and hands
each the part of the page after its own cursor. While the reader holds it, the subscriber's generator
waits on its queue as a live one does: a subscriber that has nothing to catch up is never woken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from app.eventstore.position import START, Position
from app.live.changes import Cursor
from app.live.notices import ChangeNotice

# (transaction id, global position, 0 and an entity id | 1 and ""): the order of read.changes, in which a
# cursor "after every change at a position" (1) sorts after each change at it (0).
Key = tuple[int, int, int, str]


def key_of(notice: ChangeNotice) -> Key:
    return (notice.position.transaction_id, notice.position.global_position, 0, notice.entity_id)


class Subscriber:
    """One subscription's state in the hub. Its methods never suspend, except take()."""

    __slots__ = (
        "_ask_reader",
        "_error",
        "_next",
        "_page",
        "closed",
        "entity_id",
        "lagging",
        "position",
        "queue",
        "resuming",
        "stale",
        "started",
        "topic",
        "waiting",
    )

    def __init__(self, topic: str, queue_size: int, ask: Callable[[Subscriber], None]) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[ChangeNotice | None] = asyncio.Queue(queue_size)  # None: wake up
        self._ask_reader = ask
        self.started = False  # its starting position is known
        self.lagging = False  # live notices are dropped: a catch-up will read them from read.changes
        self.waiting = False  # the catch-up reader holds it and will serve it (a page, or an error)
        self.stale = False  # told to catch up again since its read began (or before it started)
        self.resuming = False  # replaying from a client's `after`: purges may still remove rows ahead
        self.closed = False
        self.position = START
        self.entity_id: str | None = None  # last delivered at `position`; None: all of `position`
        self._page: Sequence[ChangeNotice] = ()  # caught-up changes, shared with other subscribers
        self._next = 0  # the index in _page of the next one to deliver
        self._error: Exception | None = None

    @property
    def key(self) -> Key:
        """Where it has read up to, comparable with key_of(notice)."""
        position = self.position
        if self.entity_id is None:
            return (position.transaction_id, position.global_position, 1, "")
        return (position.transaction_id, position.global_position, 0, self.entity_id)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.topic, self.position, self.entity_id)

    def start(
        self, position: Position, *, resuming: bool, behind: bool = False, entity_id: str | None = None
    ) -> None:
        """Begin after `position` (after `entity_id` within it): the topic's newest change, or a resume.

        `behind` (implied by `resuming`): read what follows `position` from read.changes first.
        """
        self.position, self.entity_id, self.started, self.resuming = position, entity_id, True, resuming
        if resuming or behind or self.stale:
            self.stale = False
            self._lag()  # take() asks for a page

    def offer(self, notice: ChangeNotice) -> None:
        """Queue a live notice; a full queue switches the subscriber to catch-up."""
        if self.lagging:
            return
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.fall_behind()

    def fall_behind(self) -> None:
        """Catch up from read.changes: its queue overflowed, or notices may have been lost."""
        if not self.started or self.waiting:
            self.stale = True  # what it reads (or its newest position) may predate the loss: read again
            return
        if self.lagging:
            return  # it asks once it has delivered its page
        self._lag()
        if not self._holds_page():
            self._ask()

    async def take(self) -> ChangeNotice | None:
        """Return the next change to deliver (the page first, then live), or None if woken for nothing."""
        if self._error is not None:
            raise self._error
        if self._holds_page():
            notice = self._page[self._next]
            self._next += 1
            if self._next == len(self._page):
                self._page, self._next = (), 0
            return self._delivered(notice)
        if self.lagging:
            self._ask()
        live = await self.queue.get()
        return None if live is None else self._delivered(live)

    def serve(self, page: Sequence[ChangeNotice], start: int, *, more: bool) -> None:
        """Hand over page[start:], what it lacks of a shared read; `more`: the read did not reach the end."""
        self.waiting = False
        if self.closed:
            return
        if more or self.stale:
            self.stale = False
        else:
            self.lagging = self.resuming = False  # live again: what is published from now on is queued
        if start < len(page):
            self._page, self._next = page, start
            self.wake()
        elif self.lagging:
            self._ask()

    def fail(self, error: Exception) -> None:
        """End the subscription with `error` (raised by take())."""
        self.waiting = False
        self._error = error
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue's reader is not waiting
            self.queue.put_nowait(None)

    def may_miss(self, horizon: Position) -> bool:
        """Tell whether changes after its cursor may have been purged, the horizon being `horizon`."""
        # Changes at or below the horizon may be gone, so a position read only in part counts too.
        return self.position < horizon or (self.position == horizon and self.entity_id is not None)

    def _holds_page(self) -> bool:
        return self._next < len(self._page)

    def _delivered(self, notice: ChangeNotice) -> ChangeNotice | None:
        if key_of(notice) <= self.key:
            return None  # delivered already
        self.position, self.entity_id = notice.position, notice.entity_id
        return notice

    def _lag(self) -> None:
        # Whatever is queued was committed before the read that follows, which will return it.
        self.lagging = True
        while not self.queue.empty():
            self.queue.get_nowait()
        if self._holds_page() or self._error is not None:
            self.wake()  # the wake-up that came with the page may have been among what was taken out

    def _ask(self) -> None:
        if not self.waiting and not self.closed:
            self.waiting = True
            self._ask_reader(self)
