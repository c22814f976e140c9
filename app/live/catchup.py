"""The hub's catch-up reader: one read of read.changes per topic, for every subscriber that needs it.

Subscribers that fell behind (a full queue, a CATCH_UP, a resume with `after`) wait here. Each round
takes all of them, and for each topic reads one page from the lowest cursor among its subscribers (the
topics of a round go into one statement, TOPICS_PER_READ at a time); every subscriber gets the part of
that page after its own cursor, shared, not copied. A subscriber whose cursor lies beyond the end of a
full page goes into another read of the same round, from the lowest such cursor: nobody waits for
another's long replay. A round that finds nothing new wakes nobody.

Live notices of a topic that arrive while its page is being read are held here (at most PAGE) and put
after the page: the subscribers, lagging meanwhile, dropped them, and the page may not have them.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from app.domain.errors import UnavailableError
from app.eventstore.position import Position
from app.live.changes import changes_after_each, retention_horizon
from app.live.errors import ResumeTooOld
from app.live.notices import ChangeNotice
from app.live.subscriber import Subscriber, key_of

log = logging.getLogger(__name__)

PAGE = 500  # changes read per topic, at most
MIN_PAGE = 20  # per topic when many topics share one read
ROWS_PER_READ = 10_000  # changes one statement returns, at most: bounds a round's memory
TOPICS_PER_READ = ROWS_PER_READ // MIN_PAGE
_NONE: tuple[()] = ()
UNAVAILABLE = "Live changes cannot be read right now; subscribe again with `after` to resume."


class CatchUp:
    """Serve lagging subscribers from read.changes, reading each topic once per round."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: list[Subscriber] = []
        self._reading: set[str] = set()  # topics whose page is being read now
        self._held: dict[str, list[ChangeNotice]] = {}  # live notices heard meanwhile, by topic
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0  # tests and benchmarks watch these
        self.reads = 0

    def ask(self, subscriber: Subscriber) -> None:
        """Serve `subscriber` in the next round (Subscriber calls this when it lags)."""
        self._waiting.append(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="hub catch-up")

    def heard(self, topic: str, notice: ChangeNotice) -> None:
        """Hold a live notice of a topic whose page is being read, for its subscribers that lag."""
        if topic in self._reading:
            held = self._held.setdefault(topic, [])
            if len(held) <= PAGE:  # one more than PAGE: "too many, read again"
                held.append(notice)

    async def close(self) -> None:
        """Stop serving; the hub wakes the subscribers that waited."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._waiting.clear()

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self.rounds += 1
            try:
                await self._serve_round(batch)
            except Exception:  # a bug: nobody may wait for a page forever
                log.exception("live notices: a catch-up round failed")
                for subscriber in batch:
                    if subscriber.waiting:
                        subscriber.fail(UnavailableError(UNAVAILABLE))

    async def _serve_round(self, batch: list[Subscriber]) -> None:
        groups: dict[str, list[Subscriber]] = defaultdict(list)
        for subscriber in batch:
            if not subscriber.closed:
                groups[subscriber.topic].append(subscriber)
        while groups:
            groups = await self._read_once_each(groups)

    async def _read_once_each(self, groups: dict[str, list[Subscriber]]) -> dict[str, list[Subscriber]]:
        """Read every topic once; return the subscribers beyond the end of their topic's page."""
        topics = list(groups)
        beyond: dict[str, list[Subscriber]] = {}
        for start in range(0, len(topics), TOPICS_PER_READ):
            chunk = {topic: groups[topic] for topic in topics[start : start + TOPICS_PER_READ]}
            beyond.update(await self._read(chunk))
        return beyond

    async def _read(self, groups: dict[str, list[Subscriber]]) -> dict[str, list[Subscriber]]:
        limit = max(MIN_PAGE, min(PAGE, ROWS_PER_READ // len(groups)))
        heads = [min(subscribers, key=lambda s: s.key).cursor for subscribers in groups.values()]
        for subscribers in groups.values():
            for subscriber in subscribers:
                subscriber.stale = False  # what happened until now, this read sees
        self._reading.update(groups)
        self.reads += 1
        try:
            pages = await changes_after_each(self._pool, heads, limit)
            resuming = any(s.resuming for subscribers in groups.values() for s in subscribers)
            horizon = await retention_horizon(self._pool) if resuming else None
        except Exception:
            log.exception("live notices: cannot read read.changes for %d topics", len(groups))
            for subscribers in groups.values():
                for subscriber in subscribers:
                    subscriber.fail(UnavailableError(UNAVAILABLE))
            return {}
        finally:
            self._reading.difference_update(groups)
            held, self._held = self._held, {}
        beyond: dict[str, list[Subscriber]] = {}
        for topic, subscribers in groups.items():
            page: Sequence[ChangeNotice] = pages.get(topic, _NONE)
            heard = held.get(topic, _NONE)
            more = len(page) == limit or len(heard) > PAGE
            if not more:
                page = _with_held(page, heard)
            left = _serve(subscribers, page, more, horizon)
            if left:
                beyond[topic] = left
        return beyond


def _with_held(page: Sequence[ChangeNotice], held: Sequence[ChangeNotice]) -> Sequence[ChangeNotice]:
    """Append the held live notices that come after the page (those it does not already have)."""
    if not held:
        return page
    last = key_of(page[-1]) if page else None
    return [*page, *(notice for notice in held if last is None or key_of(notice) > last)]


def _serve(
    subscribers: Sequence[Subscriber], page: Sequence[ChangeNotice], more: bool, horizon: Position | None
) -> list[Subscriber]:
    """Hand each subscriber its part of the page; return those whose cursor is beyond a partial page."""
    keys = [key_of(notice) for notice in page] if page else _NONE
    end = keys[-1] if more and keys else None
    beyond: list[Subscriber] = []
    for subscriber in subscribers:
        if subscriber.closed:
            subscriber.waiting = False
            continue
        if end is not None and subscriber.key >= end:
            beyond.append(subscriber)
            continue
        if horizon is not None and subscriber.resuming and subscriber.may_miss(horizon):
            subscriber.fail(ResumeTooOld(subscriber.position, horizon))
            continue
        subscriber.serve(page, bisect.bisect_right(keys, subscriber.key), more=more)
    return beyond
