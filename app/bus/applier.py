"""Apply events for one consumer: a batch per transaction, halved around a failing event, retried, parked.

A batch holds only events the consumer handles; the checkpoint still moves to the end of what was read,
past the events it ignores. With nothing to apply, that move is one fenced statement, not a transaction.

A process manager's move past ignored events is also lazy: at most one statement per LAZY_MOVE seconds,
or none when its next batch commits the checkpoint anyway. Nobody waits on its checkpoint (read-your-writes
waits on projections only), and a move not yet made only means a leader after a crash reads those events
again and ignores them again. The runner settles what is left when the stream goes quiet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from app import tracing
from app.backoff import Backoff
from app.bus.infra import POSTGRES_DOWN, REDIS_DOWN
from app.bus.lease import Lease, LeaseLost
from app.bus.protocol import Announcer, Consumer, ConsumerKind
from app.domain.errors import ValidationError
from app.events import UnknownEventType
from app.eventstore import START, Position, RecordedEvent
from app.live.notices import ChangeNotice
from app.metrics.instruments import parked
from app.settings import Settings

log = logging.getLogger(__name__)

TRIES = 3
FIRST_DELAY = 0.2
MAX_DELAY = 5.0
# Retrying cannot fix these: the event itself is at fault, so it is parked at once.
PERMANENT = (ValidationError, UnknownEventType)
# These mean "stop and let the runner sort it out", never "this event is bad".
NOT_THE_EVENTS_FAULT: tuple[type[BaseException], ...] = (LeaseLost, *POSTGRES_DOWN)
LAZY_MOVE = 0.5  # seconds a process manager's checkpoint may stay behind events it ignores

_PARK = """
INSERT INTO bus.dead_letters
    (consumer, transaction_id, global_position, event_id, event_type, stream_id, error, attempts)
VALUES ($1, $2, $3, $4::uuid, $5, $6, $7, $8)
ON CONFLICT (consumer, event_id) DO UPDATE
SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, parked_at = now(), resolved_at = NULL
"""


@dataclass(frozen=True, slots=True)
class EventRef:
    """What a dead letter records about an event (enough to find it again)."""

    position: Position
    event_id: str
    event_type: str
    stream_id: str

    @classmethod
    def of(cls, event: RecordedEvent) -> EventRef:
        return cls(event.position, event.event_id, event.event_type, event.stream_id)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class Applier:
    """Runs the consumer's transactions for the active runner and tracks its checkpoint."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        consumer: Consumer,
        lease: Lease,
        announcer: Announcer,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = redis
        self._consumer = consumer
        self._lease = lease
        self._announcer = announcer
        self._lazy = consumer.kind is ConsumerKind.PROCESS
        self.checkpoint = START  # what this runner has settled; PostgreSQL's may lag behind ignored events
        self._stored = START  # what PostgreSQL holds, as far as this runner knows
        self._stored_at = -LAZY_MOVE  # monotonic time of the last move of the stored checkpoint

    @property
    def unsettled(self) -> bool:
        """Tell whether the checkpoint in PostgreSQL is behind events this runner passed unapplied."""
        return self._stored < self.checkpoint

    async def refresh(self) -> Position:
        """Reload the checkpoint from PostgreSQL."""
        async with self._pool.acquire() as conn, conn.transaction():
            self._stored_as(await self._consumer.load_checkpoint(conn))
        return self.checkpoint

    async def settle(self) -> None:
        """Store a checkpoint left behind lazily (fenced: raises LeaseLost when the lease is gone)."""
        if self.unsettled:
            await self._move(self.checkpoint)

    def _stored_as(self, checkpoint: Position) -> None:
        self.checkpoint = self._stored = checkpoint
        self._stored_at = time.monotonic()

    async def apply(self, events: Sequence[RecordedEvent], end: Position) -> None:
        """Apply `events` exactly once each and move the checkpoint to `end`, past events not handed in.

        `end` is the position of the last event read (at or after the last of `events`). A failing event
        is retried, then parked.
        """
        if end <= self.checkpoint:
            return
        if events:
            await self._apply_halving(events, end)
        await self._advance(end)

    async def _apply_halving(self, events: Sequence[RecordedEvent], end: Position) -> None:
        """Commit `events` as one batch; if that fails, each half, down to the failing event alone.

        One bad event among 500 then costs about 2 * log2(500) = 18 transactions before its retries,
        not 500: the rest of the batch keeps moving while it is parked.
        """
        try:
            await self._commit(events, end)
            return
        except NOT_THE_EVENTS_FAULT:
            raise
        except Exception as exc:
            if len(events) == 1:
                await self._retry(events[0], exc)
                return
            name, size = self._consumer.name, len(events)
            log.warning("%s: batch of %d failed (%s); halving", name, size, describe(exc))
        half = len(events) // 2
        await self._apply_halving(events[:half], events[half - 1].position)
        await self._apply_halving(events[half:], events[-1].position)

    async def _advance(self, end: Position) -> None:
        """Move the checkpoint past events the consumer ignores: one fenced statement, no transaction.

        A process manager's move waits (in memory only) until LAZY_MOVE has passed since the last one.
        """
        if end <= self.checkpoint:
            return
        if self._lazy and time.monotonic() - self._stored_at < LAZY_MOVE:
            self.checkpoint = end
            return
        await self._move(end)

    async def _move(self, end: Position) -> None:
        async with self._pool.acquire() as conn:
            if not await self._consumer.advance_checkpoint(conn, end, self._lease):
                raise LeaseLost(f"lease {self._lease.name} is no longer held by {self._lease.owner}")
        self._stored_as(end)

    async def _retry(self, event: RecordedEvent, error: Exception) -> None:
        attempts, backoff = 1, Backoff(FIRST_DELAY, MAX_DELAY)
        while not isinstance(error, PERMANENT) and attempts < TRIES:
            await backoff.wait()
            attempts += 1
            try:
                await self._commit([event], event.position)
                return
            except NOT_THE_EVENTS_FAULT:
                raise
            except Exception as exc:
                error = exc
        await self.park(EventRef.of(event), error, attempts)

    async def _commit(self, events: Sequence[RecordedEvent], end: Position) -> None:
        name, served = self._consumer.name, (event.metadata.get("traceparent") for event in events)
        with tracing.batch_span(f"consume {name}", served, attributes={"bookworm.events": len(events)}):
            await self._commit_traced(events, end)

    async def _commit_traced(self, events: Sequence[RecordedEvent], end: Position) -> None:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                # Fenced by the lease, the checkpoint locked and moved to `end` first: the transaction then
                # holds its id for the batch's statements alone (a transaction holding an id holds back
                # every reader of all events, the relay first). A projection's commit does not wait for the
                # WAL flush (its begin_batch turns synchronous_commit off): what a crash could lose here (the
                # batch and its checkpoint, together) is re-derived from the durable event store on restart.
                # Saves a disk sync on every change's way to subscribers. A process manager's batch appends
                # events and writes state nothing could derive again: it commits durably.
                checkpoint = await self._consumer.begin_batch(conn, self._lease, end)
                fresh = [e for e in events if e.position > checkpoint]
                notices: list[ChangeNotice] = []
                if fresh:
                    with tracing.span(f"apply {self._consumer.name}"):
                        notices = await self._consumer.apply(conn, fresh)
        self._stored_as(max(checkpoint, end))
        await self._announce(notices)

    async def _announce(self, notices: list[ChangeNotice]) -> None:
        if not notices:
            return
        try:
            await self._announcer.publish(notices)
        except Exception:
            # Subscribers resume from read.changes, so a lost notice delays them but loses nothing.
            log.exception("%s: publishing %d change notices failed", self._consumer.name, len(notices))

    async def park(self, ref: EventRef, error: BaseException, attempts: int) -> None:
        """Record `ref` as a dead letter and move the checkpoint past it, in one transaction."""
        name = self._consumer.name
        log.error(
            "%s: parking %s %s after %d attempts: %s", name, ref.event_type, ref.position, attempts, error
        )
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await self._lease.fence(conn)
                checkpoint = await self._consumer.load_checkpoint(conn)
                if ref.position > checkpoint:
                    pos = ref.position
                    args = (pos.transaction_id, pos.global_position, ref.event_id, ref.event_type)
                    await conn.execute(_PARK, name, *args, ref.stream_id, describe(error), attempts)
                    parked(name)
                    checkpoint = ref.position
                    await self._consumer.save_checkpoint(conn, checkpoint)
        self._stored_as(checkpoint)
        await self._copy_to_stream(ref, error, attempts)

    async def _copy_to_stream(self, ref: EventRef, error: BaseException, attempts: int) -> None:
        fields = {
            "consumer": self._consumer.name,
            "position": str(ref.position),
            "event_id": ref.event_id,
            "type": ref.event_type,
            "stream_id": ref.stream_id,
            "error": describe(error),
            "attempts": str(attempts),
        }
        try:
            stream = self._settings.dead_letter_stream
            await self._redis.xadd(stream, fields, maxlen=self._settings.stream_maxlen, approximate=True)  # type: ignore[arg-type]
        except REDIS_DOWN as exc:
            # The table is the record; the stream copy is a convenience for watchers.
            log.warning(
                "%s: dead-letter stream copy failed (%s): %s", self._consumer.name, exc, json.dumps(fields)
            )
