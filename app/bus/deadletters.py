"""Parked events: list them, and retry one once its cause is fixed (the checkpoint never moves back)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import asyncpg

from app.bus.applier import describe
from app.bus.protocol import Consumer
from app.eventstore import EventStore, Position, RecordedEvent

log = logging.getLogger(__name__)

_COLUMNS = """id, consumer, transaction_id, global_position, event_id::text AS event_id, event_type,
    stream_id, error, attempts, parked_at, resolved_at"""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetter:
    id: int
    consumer: str
    position: Position
    event_id: str
    event_type: str
    stream_id: str
    error: str
    attempts: int
    parked_at: dt.datetime
    resolved_at: dt.datetime | None


def _dead_letter(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        consumer=row["consumer"],
        position=Position(row["transaction_id"], row["global_position"]),
        event_id=row["event_id"],
        event_type=row["event_type"],
        stream_id=row["stream_id"],
        error=row["error"],
        attempts=row["attempts"],
        parked_at=row["parked_at"],
        resolved_at=row["resolved_at"],
    )


async def list_dead_letters(
    pool: asyncpg.Pool, consumer: str | None = None, include_resolved: bool = False
) -> list[DeadLetter]:
    """Return parked events in the order they were parked, optionally for one consumer."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM bus.dead_letters
        WHERE ($1::text IS NULL OR consumer = $1) AND ($2 OR resolved_at IS NULL)
        ORDER BY id""",
        consumer,
        include_resolved,
    )
    return [_dead_letter(r) for r in rows]


async def retry_dead_letter(
    pool: asyncpg.Pool, event_store: EventStore, consumer: Consumer, dead_letter_id: int
) -> bool:
    """Apply one parked event again; mark it resolved on success, record the new error on failure."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM bus.dead_letters
            WHERE id = $1 AND consumer = $2 AND resolved_at IS NULL""",
            dead_letter_id,
            consumer.name,
        )
        if row is None:
            return False
        letter = _dead_letter(row)
        try:
            await _apply(conn, event_store, consumer, letter)
            return True
        except Exception as exc:
            log.warning("retrying dead letter %d failed: %s", dead_letter_id, describe(exc))
            await conn.execute(
                "UPDATE bus.dead_letters SET error = $2, attempts = attempts + 1 WHERE id = $1",
                dead_letter_id,
                describe(exc),
            )
            return False


async def _apply(
    conn: asyncpg.Connection, event_store: EventStore, consumer: Consumer, letter: DeadLetter
) -> None:
    event = await _find(event_store, conn, letter)
    async with conn.transaction():
        # Lock the checkpoint row (serializes with the runner and a rebuild swap); its value is not used.
        await consumer.load_checkpoint(conn)
        resolved = await conn.fetchval(
            """UPDATE bus.dead_letters SET resolved_at = now()
            WHERE id = $1 AND resolved_at IS NULL RETURNING id""",
            letter.id,
        )
        if resolved is None:
            return  # resolved by a concurrent retry meanwhile
        await consumer.apply(conn, [event])  # no publish: subscribers see it on their next read


async def _find(event_store: EventStore, conn: asyncpg.Connection, letter: DeadLetter) -> RecordedEvent:
    wanted = str(uuid.UUID(letter.event_id))
    for event in await event_store.read_stream(letter.stream_id, conn=conn):
        if event.event_id == wanted:
            return event
    raise LookupError(f"event {letter.event_id} is not in stream {letter.stream_id}")
