"""Stream entries: what the relay writes reads back whole, and so does an entry of an older relay."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from app.bus.messages import Message, encode
from app.events import REGISTRY
from app.events.catalog import AuthorCreated
from app.eventstore import Position, RecordedEvent
from app.eventstore.position import InvalidPosition

RECORDED = RecordedEvent(
    position=Position(700, 42),
    stream_id="0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3",
    stream_type="Author",
    stream_version=1,
    event_id="0190f3c2-7d1e-7a3b-9c4d-5e6f708192a4",
    event_type="AuthorCreated",
    schema_version=1,
    data={"author_id": "0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3", "name": "Ursula"},
    metadata={"actor": "admin", "correlation_id": "c"},
    recorded_at=dt.datetime(2026, 12, 6, 13, 0, tzinfo=dt.UTC),
    event=AuthorCreated(author_id="0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3", name="Ursula"),
)
PREV = Position(699, 41)


def _as_redis_gives_it(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


def test_an_entry_reads_back_as_the_recorded_event() -> None:
    message = Message.parse(b"1-0", _as_redis_gives_it(encode(RECORDED, PREV)))
    assert (message.position, message.prev) == (RECORDED.position, PREV)
    assert message.recorded(REGISTRY) == RECORDED


def test_an_entry_of_the_relay_before_the_packed_field_still_reads_back() -> None:
    older = {
        "position": str(RECORDED.position),
        "prev": str(PREV),
        "type": RECORDED.event_type,
        "schema_version": str(RECORDED.schema_version),
        "stream_id": RECORDED.stream_id,
        "stream_type": RECORDED.stream_type,
        "version": str(RECORDED.stream_version),
        "event_id": RECORDED.event_id,
        "data": json.dumps(RECORDED.data),
        "metadata": json.dumps(RECORDED.metadata),
        "recorded_at": RECORDED.recorded_at.isoformat(),
    }
    assert Message.parse("1-0", _as_redis_gives_it(older)).recorded(REGISTRY) == RECORDED


def test_a_malformed_position_is_refused_every_time_it_is_read() -> None:
    fields = {**encode(RECORDED, PREV), "prev": "not a position"}
    for _ in range(2):  # a refusal is not remembered as a position
        with pytest.raises(InvalidPosition):
            Message.parse(b"1-0", _as_redis_gives_it(fields))
    # Each consumer group reads the entry again: the same positions.
    groups = [Message.parse(b"1-0", _as_redis_gives_it(encode(RECORDED, PREV))) for _ in range(8)]
    assert {(m.position, m.prev) for m in groups} == {(RECORDED.position, PREV)}
