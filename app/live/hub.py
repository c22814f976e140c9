"""The per-process hub: one broadcaster subscription per topic, fanned out through bounded queues.

A subscriber never misses a change and never sees one twice: it registers for live notices before it
replays read.changes, skips live notices it has already delivered, and, when its queue overflows or a
CATCH_UP arrives (Redis confirmed a new or renewed subscription of its topic; or, on the every-topic
channel, notices were lost or a consumer took over from one that may have died between its commit and
its publish), it lags: live notices are dropped for it until the catch-up reader (app/live/catchup.py)
has read what it missed. That reader reads each topic once for all its lagging subscribers, so a
catch-up costs one read per topic, not one per subscriber. Memory per subscriber stays bounded by its
queue and a share of one page. A resume from a position whose changes may have been purged (below the
retention horizon) raises ResumeTooOld instead of leaving a gap.

A topic's pump subscribes its channel through broadcaster and ends when the topic's last subscriber
leaves; cancelling it at any point leaves no channel subscribed (app/live/backend.py). Joining
subscribers wait until Redis has confirmed the subscription (at most CONFIRM_TIMEOUT; a confirmation
that comes later sends them to catch up), so nothing falls between their start and live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import asyncpg
from broadcaster import Broadcast

from app.aio import cancel_and_wait
from app.eventstore.position import Position
from app.live.backend import CATCH_UP
from app.live.catchup import CatchUp
from app.live.changes import latest_position, retention_horizon
from app.live.cohorts import Cohorts
from app.live.errors import ResumeTooOld
from app.live.notices import ChangeNotice
from app.live.notifier import EVERY_TOPIC
from app.live.subscriber import Subscriber
from app.settings import Settings

log = logging.getLogger(__name__)

PUMP_RETRY = 1.0
CONFIRM_TIMEOUT = 5.0  # seconds joining subscribers wait for Redis to confirm a SUBSCRIBE, at most


@dataclass(eq=False)
class Watch:
    """A standing watch of one topic, for a reader of the whole process such as the response cache.

    `heard` gets each notice as it arrives, and None whenever notices may have been lost: Redis confirmed
    the topic's or the every-topic channel's subscription (after a reconnection too), or a catch-up was
    announced to everyone. `live`: both channels are confirmed, so from now on every notice arrives or
    a None says that some may not have.
    """

    topic: str
    heard: Callable[[ChangeNotice | None], None]
    topic_confirmed: bool = False
    everyone_confirmed: bool = False

    @property
    def live(self) -> bool:
        return self.topic_confirmed and self.everyone_confirmed


@dataclass(eq=False)
class _Topic:
    pump: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # Redis confirmed (or gave up waiting)
    subscribers: set[Subscriber] = field(default_factory=set)
    watches: list[Watch] = field(default_factory=list)
    confirmed: bool = False  # Redis confirmed the channel's subscription at least once

    def fall_behind(self) -> None:
        """Send every subscriber of the topic to re-read read.changes: notices may have been lost."""
        for subscriber in self.subscribers:
            subscriber.fall_behind()
        for watch in self.watches:
            watch.heard(None)


class Hub:
    """Deliver each topic's change notices to this process's subscribers: in order, no gap, no duplicate."""

    def __init__(self, broadcast: Broadcast, pool: asyncpg.Pool, settings: Settings) -> None:
        self._broadcast = broadcast
        self._pool = pool
        self._settings = settings
        self._topics: dict[str, _Topic] = {}
        self._leaving: dict[str, asyncio.Task[None]] = {}  # pumps of topics left, until they have ended
        self._catch_up = CatchUp(pool)
        self._everyone: asyncio.Task[None] | None = None  # follows the every-topic catch-up channel
        self._everyone_ready = asyncio.Event()
        self._everyone_confirmed = False  # Redis confirmed the every-topic subscription at least once
        self._latest: dict[str, asyncio.Future[Position]] = {}  # a topic's newest position, being read
        self._closed = False
        self.cohorts = Cohorts(self, settings.subscriber_queue_size)

    async def subscribe(
        self,
        topic: str,
        after: Position | None = None,
        *,
        after_entity: str | None = None,
        delivered: bool = False,
        started: Callable[[Position], None] | None = None,
    ) -> AsyncGenerator[ChangeNotice, None]:
        """Yield the topic's changes after `after` (or from now on), then live ones; aclose() to leave.

        With `after_entity`, the changes at `after` itself whose entity id sorts after it come first.
        `delivered`: `after` is where a live subscription of this process got to, not a client's resume,
        so it is not checked against the retention horizon. `started` is told where the subscription
        begins once it is known. Raise ResumeTooOld when changes
        after `after` may have been purged: before yielding anything, or during the replay if a purge
        overtakes it.
        """
        if self._closed:
            return
        subscriber = Subscriber(topic, self._settings.subscriber_queue_size, self._catch_up.ask)
        entry = self._join(topic, subscriber)
        try:
            await entry.ready.wait()  # live first, so nothing falls between the replay and live
            await self._everyone_ready.wait()
            if after is None:
                subscriber.start(await self._latest_position(topic), resuming=False)
            else:
                subscriber.start(after, resuming=not delivered, behind=True, entity_id=after_entity)
            if started is not None:
                started(subscriber.position)
            while not self._closed:
                notice = await subscriber.take()
                if notice is not None:
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
        self._everyone_ready.set()
        for entry in entries:
            entry.ready.set()  # none may wait to start
            for subscriber in entry.subscribers:
                subscriber.wake()
        await self._catch_up.close()
        pumps = [entry.pump for entry in entries if entry.pump is not None]
        await cancel_and_wait([*pumps, *self._leaving.values(), *filter(None, [self._everyone])])

    def watch(self, topic: str, heard: Callable[[ChangeNotice | None], None]) -> Watch:
        """Call `heard` with every notice of `topic` from now on, and None when some may be lost (Watch).

        The topic's channel stays subscribed while the hub runs, whether or not anyone subscribes to it.
        """
        self._follow_everyone()
        entry = self._entry(topic)
        watch = Watch(topic, heard, entry.confirmed, self._everyone_confirmed)
        entry.watches.append(watch)
        return watch

    def topics(self) -> set[str]:
        """Return the topics this process is subscribed to."""
        return set(self._topics)

    def queue_depths(self, topic: str) -> list[int]:
        """Return how many live notices wait in each local subscriber's queue of a topic."""
        entry = self._topics.get(topic)
        return [] if entry is None else [s.queue.qsize() for s in entry.subscribers]

    @property
    def catch_up(self) -> CatchUp:
        """The catch-up reader (its counters show how many rounds and reads catch-ups took)."""
        return self._catch_up

    def _join(self, topic: str, subscriber: Subscriber) -> _Topic:
        self._follow_everyone()
        entry = self._entry(topic)
        entry.subscribers.add(subscriber)
        return entry

    def _follow_everyone(self) -> None:
        if self._everyone is None:
            channel = self._settings.changes_channel(EVERY_TOPIC)
            follow = self._follow(channel, self._everyone_ready, self._on_everyone)
            self._everyone = asyncio.create_task(follow, name="hub every topic")

    def _entry(self, topic: str) -> _Topic:
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._topics[topic] = _Topic()
            pump = self._pump(topic, entry, self._leaving.get(topic))
            entry.pump = asyncio.create_task(pump, name=f"hub {topic}")
        return entry

    async def _leave(self, topic: str, entry: _Topic, subscriber: Subscriber) -> None:
        subscriber.closed = True
        entry.subscribers.discard(subscriber)
        if entry.subscribers or entry.watches or self._topics.get(topic) is not entry or entry.pump is None:
            return
        del self._topics[topic]
        pump = self._leaving[topic] = entry.pump
        pump.add_done_callback(lambda _: self._left(topic, pump))
        await cancel_and_wait([pump])

    def _left(self, topic: str, pump: asyncio.Task[None]) -> None:
        if self._leaving.get(topic) is pump:
            del self._leaving[topic]

    async def _pump(self, topic: str, entry: _Topic, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # the topic's previous pump still holds the channel: let it go
        channel = self._settings.changes_channel(topic)
        await self._follow(channel, entry.ready, lambda message: self._on_topic(topic, entry, message))

    async def _follow(self, channel: str, ready: asyncio.Event, handle: Callable[[str], None]) -> None:
        """Follow a channel until cancelled, subscribing again after a failure.

        `ready` is set by the first CATCH_UP (Redis confirmed), or after CONFIRM_TIMEOUT.
        """
        timer = asyncio.get_running_loop().call_later(CONFIRM_TIMEOUT, ready.set)
        try:
            while True:
                try:
                    async with self._broadcast.subscribe(channel) as events:
                        while True:
                            handle((await events.get()).message)
                except Exception:
                    log.exception("live notices: the subscription to %s failed; retrying", channel)
                # Its confirmation, once subscribed again, sends everyone to catch up on what was missed.
                await asyncio.sleep(PUMP_RETRY)
        finally:
            timer.cancel()

    def _on_topic(self, topic: str, entry: _Topic, message: str) -> None:
        if message == CATCH_UP:
            entry.confirmed = True
            for watch in entry.watches:
                watch.topic_confirmed = True
                watch.heard(None)
            if entry.ready.is_set():
                entry.fall_behind()
            else:
                entry.ready.set()  # Redis confirmed: the subscribers waiting to start may go on
            return
        try:
            notice = ChangeNotice.from_json(message)
        except (ValueError, KeyError, TypeError):
            log.warning("live notices: ignoring a malformed notice %.200r", message)
            return
        self._catch_up.heard(topic, notice)
        for subscriber in entry.subscribers:
            subscriber.offer(notice)
        for watch in entry.watches:
            watch.heard(notice)

    def _on_everyone(self, message: str) -> None:
        """A CATCH_UP on the every-topic channel: notices lost, or a consumer took over."""
        if message != CATCH_UP:
            return
        self._everyone_confirmed = True
        watches = [watch for entry in self._topics.values() for watch in entry.watches]
        for watch in watches:
            watch.everyone_confirmed = True
        if not self._everyone_ready.is_set():
            self._everyone_ready.set()  # Redis confirmed this subscription: nothing was lost yet
            for watch in watches:
                watch.heard(None)
            return
        for entry in self._topics.values():
            entry.fall_behind()
