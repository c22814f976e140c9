"""The per-process hub: one broadcaster subscription per topic, fanned out through bounded queues.

A subscriber never misses a change and never sees one twice: it registers for live notices before
it replays read.changes, skips live notices it has already delivered, and, when its queue overflows
or the backend reconnects, or a CATCH_UP arrives on the every-topic channel (notices were lost, or a
consumer took over from one that may have died between its commit and its publish), it is marked
lagging and catches up from read.changes before going live again. Its memory stays bounded by its
queue. A resume from a position whose changes may have been purged (below the retention horizon)
raises ResumeTooOld instead of leaving a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import asyncpg
from broadcaster import Broadcast

from app.aio import cancel_and_wait
from app.eventstore.position import START, Position
from app.live.backend import CATCH_UP
from app.live.changes import changes_after, latest_position, retention_horizon
from app.live.errors import ResumeTooOld
from app.live.notices import ChangeNotice
from app.live.notifier import EVERY_TOPIC
from app.settings import Settings

log = logging.getLogger(__name__)

_PAGE = 500
PUMP_RETRY = 1.0


class _Subscriber:
    """One local subscriber: its bounded queue of live notices and how far it has read."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[ChangeNotice | None] = asyncio.Queue(queue_size)  # None: wake up
        self.lagging = False
        self.resuming = False  # replaying from a client's `after`: purges may still remove rows ahead
        self.position = START
        self.entity_id: str | None = None  # last delivered at `position`; None: all of `position`

    def offer(self, notice: ChangeNotice) -> None:
        if self.lagging:
            return  # read.changes has it: the catch-up will read it
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.lagging = True

    def fall_behind(self) -> None:
        self.lagging = True
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue's reader is not waiting
            self.queue.put_nowait(None)

    def start_catch_up(self) -> None:
        # Whatever is queued now was committed before the read that follows, which will return it.
        self.lagging = False
        while not self.queue.empty():
            self.queue.get_nowait()

    def is_new(self, notice: ChangeNotice) -> bool:
        if notice.position != self.position:
            return notice.position > self.position
        return self.entity_id is not None and notice.entity_id > self.entity_id

    def delivered(self, notice: ChangeNotice) -> None:
        self.position, self.entity_id = notice.position, notice.entity_id

    def may_miss(self, horizon: Position) -> bool:
        # Changes at or below the horizon may be gone, so a position read only in part counts too.
        return self.position < horizon or (self.position == horizon and self.entity_id is not None)


@dataclass(eq=False)
class _Topic:
    pump: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: set[_Subscriber] = field(default_factory=set)

    def fall_behind(self) -> None:
        """Send every subscriber of the topic to re-read read.changes: notices may have been lost."""
        for subscriber in self.subscribers:
            subscriber.fall_behind()


class Hub:
    """Deliver each topic's change notices to this process's subscribers: in order, no gap, no duplicate."""

    def __init__(self, broadcast: Broadcast, pool: asyncpg.Pool, settings: Settings) -> None:
        self._broadcast = broadcast
        self._pool = pool
        self._settings = settings
        self._topics: dict[str, _Topic] = {}
        self._everyone: asyncio.Task[None] | None = None  # follows the every-topic catch-up channel
        self._latest: dict[str, asyncio.Future[Position]] = {}  # a topic's newest position, being read
        self._closed = False

    async def subscribe(
        self, topic: str, after: Position | None = None
    ) -> AsyncGenerator[ChangeNotice, None]:
        """Yield the topic's changes after `after` (or from now on), then live ones; aclose() to leave.

        Raise ResumeTooOld when changes after `after` may have been purged: before yielding anything,
        or during the replay if a purge overtakes it.
        """
        if self._closed:
            return
        subscriber = _Subscriber(self._settings.subscriber_queue_size)
        entry = self._join(topic, subscriber)
        try:
            await entry.ready.wait()  # live first, so nothing falls between the replay and live
            if after is None:
                subscriber.position = await self._latest_position(topic)
            else:
                subscriber.position, subscriber.lagging, subscriber.resuming = after, True, True
            while not self._closed:
                for notice in await self._next(topic, subscriber):
                    subscriber.delivered(notice)
                    yield notice
        finally:
            await self._leave(topic, entry, subscriber)

    async def _latest_position(self, topic: str) -> Position:
        """The topic's newest change, read once for every subscriber that asks while it is being read.

        A thousand clients subscribing at once then cost one query, not a thousand in the pool's queue
        ahead of everyone else's. A subscriber may share a read that began a moment before it joined:
        it then also gets the changes of that moment, never a gap.
        """
        pending = self._latest.get(topic)
        if pending is None:
            pending = self._latest[topic] = asyncio.ensure_future(latest_position(self._pool, topic))
            pending.add_done_callback(lambda _: self._latest.pop(topic, None))
        return await asyncio.shield(pending)

    async def check_resume(self, after: Position) -> None:
        """Raise ResumeTooOld if changes after `after` may have been purged from read.changes."""
        horizon = await retention_horizon(self._pool)
        if after < horizon:
            raise ResumeTooOld(after, horizon)

    async def close(self) -> None:
        """End every subscription and release every topic."""
        self._closed = True
        entries = list(self._topics.values())
        self._topics.clear()
        for entry in entries:
            for subscriber in entry.subscribers:
                subscriber.wake()
        await self._stop_pumps(entries)
        if self._everyone is not None:
            await cancel_and_wait([self._everyone])

    def topics(self) -> set[str]:
        """Return the topics this process is subscribed to."""
        return set(self._topics)

    def queue_depths(self, topic: str) -> list[int]:
        """Return how many live notices wait in each local subscriber's queue of a topic."""
        entry = self._topics.get(topic)
        return [] if entry is None else [s.queue.qsize() for s in entry.subscribers]

    async def _next(self, topic: str, subscriber: _Subscriber) -> list[ChangeNotice]:
        if subscriber.lagging:
            subscriber.start_catch_up()
            page = await changes_after(
                self._pool, topic, subscriber.position, _PAGE, after_entity_id=subscriber.entity_id
            )
            if subscriber.resuming:
                await self._check_replayed(subscriber)
            if len(page) == _PAGE:
                subscriber.lagging = True  # more to read before going live
            else:
                subscriber.resuming = False  # replayed up to now: what follows is new, not purgeable
            return page
        notice = await subscriber.queue.get()
        return [notice] if notice is not None and subscriber.is_new(notice) else []

    async def _check_replayed(self, subscriber: _Subscriber) -> None:
        # Read after the page: a purge that committed before the page was read shows up here.
        horizon = await retention_horizon(self._pool)
        if subscriber.may_miss(horizon):
            raise ResumeTooOld(subscriber.position, horizon)

    def _join(self, topic: str, subscriber: _Subscriber) -> _Topic:
        if self._everyone is None:
            self._everyone = asyncio.create_task(self._pump_everyone(), name="hub every topic")
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._topics[topic] = _Topic()
            entry.pump = asyncio.create_task(self._pump(topic, entry), name=f"hub {topic}")
        entry.subscribers.add(subscriber)
        return entry

    async def _leave(self, topic: str, entry: _Topic, subscriber: _Subscriber) -> None:
        entry.subscribers.discard(subscriber)
        if not entry.subscribers and self._topics.get(topic) is entry:
            del self._topics[topic]
            await self._stop_pumps([entry])

    async def _pump(self, topic: str, entry: _Topic) -> None:
        while True:
            try:
                async with self._broadcast.subscribe(self._settings.changes_channel(topic)) as events:
                    entry.ready.set()
                    while True:
                        self._fan_out(entry, (await events.get()).message)
            except Exception:
                log.exception("live notices: the subscription to topic %s failed; retrying", topic)
            finally:
                entry.ready.set()  # never leave a joining subscriber waiting
            # Notices may have been missed meanwhile: everyone re-reads read.changes once we are back.
            entry.fall_behind()
            await asyncio.sleep(PUMP_RETRY)

    async def _pump_everyone(self) -> None:
        """Follow the channel whose CATCH_UP concerns every topic (notices lost, a consumer took over)."""
        channel = self._settings.changes_channel(EVERY_TOPIC)
        while True:
            try:
                async with self._broadcast.subscribe(channel) as events:
                    while True:
                        await events.get()
                        self._everyone_falls_behind()
            except Exception:
                log.exception("live notices: the every-topic subscription failed; retrying")
            self._everyone_falls_behind()
            await asyncio.sleep(PUMP_RETRY)

    def _everyone_falls_behind(self) -> None:
        for entry in self._topics.values():
            entry.fall_behind()

    def _fan_out(self, entry: _Topic, message: str) -> None:
        if message == CATCH_UP:
            entry.fall_behind()
            return
        try:
            notice = ChangeNotice.from_json(message)
        except (ValueError, KeyError, TypeError):
            log.warning("live notices: ignoring a malformed notice %.200r", message)
            return
        for subscriber in entry.subscribers:
            subscriber.offer(notice)

    @staticmethod
    async def _stop_pumps(entries: list[_Topic]) -> None:
        await cancel_and_wait([entry.pump for entry in entries if entry.pump is not None])
