"""The exact response cache: a query's answer kept until a change notice says what it read has changed.

Keys and what may be kept are the view's and the schema's business (app/schema/cache.py); here is the
store. An entry is tagged with the rows and listings its resolvers read (app/queries/reads.py). Every
API process watches the catalog topic (Hub.watch); a notice about entity E with id I drops the entries
tagged `E:I` or `E`. When notices may have been lost (Redis confirmed a subscription again, or a
catch-up was announced to everyone), every entry is dropped; until both channels are confirmed nothing
is kept or served.

The race between a read and a change: a read that began before a notice arrived may have seen the old
row; its answer is kept only if none of its tags was dropped since it began (`Reading.since`). And an
answer never serves a request that asks, with Bookworm-Position, for a position newer than the catalog
checkpoint this process knew when the answer's read began.

Bounds: `entries` answers and `max_bytes` bytes in all, least recently used dropped first; an answer
over 1/64 of the bytes is not kept; an entry lives `seconds` at most (a bound on how long an answer can
outlive a notice lost in a way no confirmation reports).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from app.eventstore.position import Position
from app.live.hub import Hub, Watch
from app.live.notices import CATALOG_TOPIC, ChangeNotice
from app.queries.reads import tags_of

MAX_TAGS_REMEMBERED = 10_000  # recent drops kept per tag; past this, reads begun earlier are not kept


@dataclass(slots=True)
class Reading:
    """One request's read, from before it began: what it read, and what to keep with its answer."""

    since: int  # the cache's drop count when the read began
    position: Position  # the catalog checkpoint this process knew then
    tags: set[str] = field(default_factory=set)
    cost: int = 0  # what the request was charged in all
    requested_cost: int = 0  # its `requestedQueryCost`
    cacheable: bool = False  # admission saw one query operation of cacheable fields
    operation: str = ""  # the operation's metrics label


@dataclass(frozen=True, slots=True)
class Entry:
    """A kept answer: the encoded `data` member, and what a request that reuses it is charged."""

    data: bytes
    cost: int
    requested_cost: int
    position: Position
    tags: frozenset[str]
    expires: float
    operation: str = ""  # the metrics label of a request it answers


@dataclass
class Counts:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    dropped: int = 0
    cleared: int = 0


class ResponseCache:
    """Answers of cacheable queries by request, dropped by the catalog's change notices."""

    def __init__(self, *, entries: int, max_bytes: int, seconds: float) -> None:
        self.max_entries, self.max_bytes, self.seconds = entries, max_bytes, seconds
        self.max_entry_bytes = max_bytes // 64
        self.counts = Counts()
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._by_tag: dict[str, set[Hashable]] = {}
        self._bytes = 0
        self._drops = 0  # notices and clears heard
        self._dropped_at: dict[str, int] = {}  # tag -> _drops after its latest drop
        self._forgotten = 0  # _drops when _dropped_at was last emptied
        self._watch: Watch | None = None

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def follow(self, hub: Hub, topic: str = CATALOG_TOPIC) -> None:
        """Hear the topic's notices from now on; nothing is kept or served until every one arrives."""
        self._watch = hub.watch(topic, self.heard)

    @property
    def _live(self) -> bool:
        return self._watch is not None and self._watch.live

    def begin(self, position: Position) -> Reading | None:
        """Start recording a request's read; None when nothing may be kept now."""
        if not self._live or not self.enabled:
            return None
        return Reading(self._drops, position)

    def find(self, key: Hashable, position: Position | None) -> Entry | None:
        """Return the answer kept for `key`, if it is current and at least as new as `position`."""
        entry = self._entries.get(key)
        if entry is None or not self._live:
            self.counts.misses += 1
            return None
        if entry.expires < time.monotonic():
            self._remove(key)
            self.counts.misses += 1
            return None
        if position is not None and entry.position < position:
            self.counts.misses += 1
            return None
        self._entries.move_to_end(key)
        self.counts.hits += 1
        return entry

    def keep(self, key: Hashable, reading: Reading, data: bytes) -> bool:
        """Keep a request's answer, unless something it read may have changed since its read began."""
        if not (self._live and reading.cacheable and reading.tags) or len(data) > self.max_entry_bytes:
            return False
        if reading.since < self._forgotten or any(
            self._dropped_at.get(tag, 0) > reading.since for tag in reading.tags
        ):
            return False
        tags = frozenset(reading.tags)
        expires = time.monotonic() + self.seconds
        entry = Entry(
            data, reading.cost, reading.requested_cost, reading.position, tags, expires, reading.operation
        )
        if key in self._entries:
            self._remove(key)
        self._entries[key] = entry
        self._bytes += len(data)
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self.counts.stored += 1
        return True

    def heard(self, notice: ChangeNotice | None) -> None:
        """A change notice drops what it makes stale; None (notices may be lost) drops everything."""
        self._drops += 1
        if notice is None:
            self.clear()
            return
        for tag in tags_of(notice.entity, notice.entity_id):
            self._dropped_at[tag] = self._drops
            for key in self._by_tag.pop(tag, ()):
                if key in self._entries:
                    self._remove(key)
                    self.counts.dropped += 1
        if len(self._dropped_at) > MAX_TAGS_REMEMBERED:
            self._dropped_at.clear()
            self._forgotten = self._drops

    def clear(self) -> None:
        """Drop every answer, and keep none whose read began before now."""
        self._drops += 1
        self._forgotten = self._drops
        self._dropped_at.clear()
        self._entries.clear()
        self._by_tag.clear()
        self._bytes = 0
        self.counts.cleared += 1

    def _remove(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.data)
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
