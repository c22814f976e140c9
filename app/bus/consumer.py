"""ConsumerRunner: one active consumer per group (lease), catch-up from PostgreSQL, then the stream.

Events of a registered type the consumer does not handle are never decoded: they only move the checkpoint.
Events of an unknown type still reach the decoder, which parks them (a newer writer's event, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from app.backoff import Backoff
from app.bus.applier import LAZY_MOVE, Applier, EventRef
from app.bus.infra import POSTGRES_DOWN, REDIS_DOWN, is_nogroup, text
from app.bus.keeper import LeaseKeeper
from app.bus.lease import Lease, LeaseLost
from app.bus.messages import Message
from app.bus.protocol import Announcer, Consumer
from app.eventstore import EventStore, Position, RecordedEvent
from app.redis_line import RedisLine
from app.settings import Settings

__all__ = ["Announcer", "Consumer", "ConsumerRunner"]

log = logging.getLogger(__name__)

BATCH = 500
BLOCK_MS = 1000
REDIS_RETRY_CAP = 5.0  # seconds between tries of an unreachable Redis, while PostgreSQL is read

Entries = Sequence[tuple[Any, Any]]


@dataclass
class _Batch:
    """Read but not yet settled: the events to apply, and the last position read (ignored ones count)."""

    events: list[RecordedEvent] = field(default_factory=list)
    end: Position | None = None

    def add(self, event: RecordedEvent) -> None:
        self.events.append(event)
        self.end = event.position

    def skip(self, position: Position) -> None:
        self.end = position

    def clear(self) -> None:
        self.events.clear()
        self.end = None


class ConsumerRunner:
    """Feeds one consumer group: the lease holder applies, the others stand by.

    `keeper` renews the lease while this runner leads; it is shared by every runner of the process.
    """

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        event_store: EventStore,
        consumer: Consumer,
        announcer: Announcer,
        keeper: LeaseKeeper,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis
        self._store = event_store
        self._consumer = consumer
        self._stream = settings.events_stream
        self._group = consumer.name
        self._lease = Lease(pool, consumer.name, settings.lease_ttl)
        self._keeper = keeper
        self._announcer = announcer
        self._applier = Applier(settings, pool, redis, consumer, self._lease, announcer)
        self._line = RedisLine.of(redis)  # None: read through redis-py (TLS, say)
        self._ignored = frozenset(event_store.registry.names()) - consumer.handles
        self.is_active = False

    @property
    def name(self) -> str:
        return self._group

    @property
    def owner(self) -> str:
        """This runner's lease owner id, also its consumer name in the Redis group."""
        return self._lease.owner

    @property
    def checkpoint(self) -> Position:
        return self._applier.checkpoint

    async def run(self) -> None:
        """Stand by, lead while the lease is ours, repeat; until cancelled (the lease is left to expire)."""
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self._wait_for_lease()
                await self._lead()
            except asyncio.CancelledError:
                raise
            except LeaseLost as exc:
                log.warning("%s: %s; standing by", self._group, exc)
                backoff.reset()
            except POSTGRES_DOWN as exc:
                log.warning("%s: PostgreSQL unavailable (%s); retrying", self._group, exc)
            except Exception:
                log.exception("%s: unexpected error; restarting", self._group)
            finally:
                self.is_active = False
            await backoff.wait()

    async def release(self) -> None:
        """Give the lease up (after cancelling run()) so that a standby takes over at once.

        A checkpoint left behind lazily is stored first, so the next leader does not read those events again.
        """
        try:
            with contextlib.suppress(LeaseLost):  # another runner leads: nothing of ours to store
                await self._applier.settle()
        finally:
            try:
                await self._lease.release()
            finally:
                if self._line is not None:
                    await self._line.aclose()

    async def _wait_for_lease(self) -> None:
        # Polling, not an event: the holder may be another process, and PostgreSQL is the only referee.
        while True:
            if await self._lease.try_acquire():
                break
            await asyncio.sleep(min(self._settings.lease_ttl / 3, 1.0))
        self.is_active = True
        log.info("%s: active as %s", self._group, self.owner)

    async def _lead(self) -> None:
        lost = self._keeper.hold(self._lease)
        try:
            await self._applier.refresh()
            # The previous leader may have died between committing a batch and announcing it.
            await self._announcer.catch_up_everyone()
            await self._follow(lost)
        finally:
            self._keeper.drop(self._lease)

    async def _follow(self, lost: asyncio.Event) -> None:
        live = await self._sync()
        settled: list[str] = []
        redis_retry = Backoff(self._settings.relay_poll_interval, REDIS_RETRY_CAP)
        while not lost.is_set():
            if not live:
                # PostgreSQL at every poll, Redis only at a backoff: a frozen Redis costs a timeout per try.
                await self._poll_postgres(redis_retry.next(), lost)
                live = await self._sync()
                if live:
                    redis_retry.reset()
                continue
            try:
                entries = await self._read(settled)
                if not entries:
                    await self._applier.settle()
                settled = await self._handle(entries)
            except REDIS_DOWN as exc:
                settled = []  # still pending: _sync claims them again, and acknowledges what it skips
                if is_nogroup(exc):
                    log.info("%s: consumer group is gone (Redis flushed?); catching up", self._group)
                else:
                    log.warning("%s: Redis unavailable (%s); reading PostgreSQL", self._group, exc)
                live = await self._sync()
        raise LeaseLost(f"lease {self._group} lost by {self.owner}")

    async def _poll_postgres(self, seconds: float, lost: asyncio.Event) -> None:
        """Catch up from PostgreSQL every poll interval for `seconds`, leaving Redis alone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not lost.is_set():
            await asyncio.sleep(self._settings.relay_poll_interval)
            if loop.time() >= deadline:
                return
            await self._catch_up()

    async def _sync(self) -> bool:
        """Catch up from PostgreSQL; return whether the stream can be followed again."""
        try:
            await self._create_group()
        except REDIS_DOWN:
            await self._catch_up()
            return False
        await self._catch_up()
        try:
            await self._claim_pending()
        except REDIS_DOWN:
            return False
        return True

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _catch_up(self) -> None:
        """Apply everything committed after the checkpoint, straight from the event store."""
        while True:
            after = self._applier.checkpoint
            # Decoded one by one, so an event no registered class can read is parked, not fatal.
            events = await self._store.read_all(after, limit=BATCH, decode=False)
            await self._apply_decodable(events)
            if len(events) < BATCH:
                await self._applier.settle()
                return

    async def _apply_decodable(self, events: Sequence[RecordedEvent]) -> None:
        """Decode and apply `events` in order, parking each one that cannot be decoded."""
        batch = _Batch()
        registry = self._store.registry
        for event in events:
            if event.event_type in self._ignored:
                batch.skip(event.position)
                continue
            try:
                decoded = registry.decode(event.event_type, event.schema_version, dict(event.data))
            except Exception as exc:
                await self._flush(batch)
                await self._applier.park(EventRef.of(event), exc, 1)
                continue
            batch.add(dataclasses.replace(event, event=decoded))
        await self._flush(batch)

    async def _claim_pending(self) -> None:
        """Take over what a previous owner (or this one, before a failure) read but never acknowledged."""
        start = "0-0"
        while True:
            reply: Any = await self._redis.xautoclaim(
                self._stream, self._group, self.owner, min_idle_time=0, start_id=start, count=BATCH
            )
            settled = await self._handle([e for e in reply[1] if e and e[1] is not None])
            if settled:
                await self._redis.xack(self._stream, self._group, *settled)
            start = text(reply[0])
            if start == "0-0":
                return

    async def _read(self, settled: list[str]) -> Entries:
        """Acknowledge `settled` and wait for new messages, in one round trip."""
        # A checkpoint left behind lazily is settled once the stream has been quiet that long.
        block = round(LAZY_MOVE * 1000) if self._applier.unsettled else BLOCK_MS
        if self._line is not None:
            return await self._read_on_line(self._line, settled, block)
        pipe = self._redis.pipeline(transaction=False)
        if settled:
            pipe.xack(self._stream, self._group, *settled)
        pipe.xreadgroup(self._group, self.owner, {self._stream: ">"}, count=BATCH, block=block)
        replies: list[Any] = await pipe.execute()
        reply = replies[-1]
        if not reply:
            return []
        streams = reply.values() if isinstance(reply, dict) else [entries for _, entries in reply]
        return [entry for entries in streams for entry in entries]

    async def _read_on_line(self, line: RedisLine, settled: list[str], block: int) -> Entries:
        """`_read` on this runner's own line to Redis: a fifth of redis-py's CPU per read (bench/README.md).

        The read blocks the line's connection for up to `block` ms; past that and `redis_timeout` more,
        Redis is taken for unreachable and the connection for lost (a reply still on its way would hold
        the next read up behind it). The line also goes when the runner stops during a read.
        """
        commands: list[tuple[str | int, ...]] = []
        if settled:
            commands.append(("XACK", self._stream, self._group, *settled))
        read = ("XREADGROUP", "GROUP", self._group, self.owner, "COUNT", BATCH, "BLOCK", block)
        commands.append((*read, "STREAMS", self._stream, ">"))
        # Cut short, the read may still wait in Redis and take entries for nobody: the connection goes (as
        # redis-py drops one whose read was cut short), and what was taken anyway is claimed later.
        replies = await line.call_many(*commands, drop_after=block / 1000 + self._settings.redis_timeout)
        # [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing came in `block` ms.
        return [(entry[0], _pairs(entry[1])) for _, entries in replies[-1] or () for entry in entries]

    async def _handle(self, entries: Entries) -> list[str]:
        """Apply new messages in order; skip what the checkpoint covers; catch up over any gap.

        Return the ids of the messages now settled (at or below the checkpoint), for XACK.
        """
        done: list[str] = []
        seen: list[Message] = []
        batch = _Batch()
        for message_id, raw in entries:
            message = _parse(message_id, raw)
            if message is None:
                done.append(text(message_id))
                continue
            seen.append(message)
            expected = batch.end or self._applier.checkpoint
            if message.position > expected:
                await self._take(message, expected, batch)
        await self._flush(batch)
        return done + [m.message_id for m in seen if m.position <= self._applier.checkpoint]

    async def _take(self, message: Message, expected: Position, batch: _Batch) -> None:
        """Add `message` to `batch`, or settle the batch first when it cannot simply follow it."""
        if message.prev == expected:
            if message.fields.get("type") in self._ignored:
                batch.skip(message.position)
                return
            try:
                batch.add(message.recorded(self._store.registry))
                return
            except Exception as exc:  # unknown type or a payload its class does not accept
                await self._flush(batch)
                await self._applier.park(_ref(message), exc, 1)
                return
        log.info(
            "%s: gap before %s (prev %s, at %s); catching up",
            self._group,
            message.position,
            message.prev,
            expected,
        )
        await self._flush(batch)
        await self._catch_up()

    async def _flush(self, batch: _Batch) -> None:
        if batch.end is not None:
            await self._applier.apply(batch.events, batch.end)
        batch.clear()


def _pairs(fields: Any) -> Any:
    """An entry's flat list of fields and values as a dict; anything else as it is (dropped as malformed)."""
    if not isinstance(fields, list):
        return fields
    values = iter(fields)
    return dict(zip(values, values, strict=False))


def _parse(message_id: Any, raw: Any) -> Message | None:
    try:
        return Message.parse(message_id, raw)
    except (KeyError, ValueError, AttributeError):
        log.error("dropping malformed stream entry %s", text(message_id))
        return None


def _ref(message: Message) -> EventRef:
    f = message.fields
    return EventRef(message.position, f["event_id"], f["type"], f["stream_id"])
