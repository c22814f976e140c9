"""How long after its commit every read model had applied a write, heard from PostgreSQL, not the API.

Each forward move of a projection's checkpoint NOTIFYs `bookworm_checkpoints` when it commits (migration
0008). The clock LISTENs on its own connection to Bookworm's database and notes the wall time at which the
lowest checkpoint of the read models (the ones a `Bookworm-Position` header waits for) passed each
position. A write's lag is that time less its event's `recorded_at` (the append statement's start, a
millisecond or so before its commit): no request of the probe waits in an API process behind the load.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import asyncpg

from app.eventstore.position import START, Position
from app.live.checkpoints import CHANNEL, parse_notice
from app.projections import PROJECTIONS

HEARD_TIMEOUT = 10.0  # after the API said the read models have a position, its notice is this close
_NONE: Mapping[str, Callable[[Position], float | None]] = MappingProxyType({})
_CHECKPOINTS = "SELECT name, transaction_id, global_position FROM read.projections WHERE name = ANY($1)"
_COMMITTED = """
SELECT transaction_id::text::bigint, global_position, extract(epoch FROM recorded_at)::float8
FROM eventstore.events WHERE global_position = ANY($1::bigint[])
"""


class ReadModelClock:
    """When the lowest read-model checkpoint passed each position, by the wall clock."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._at: dict[str, Position] = dict.fromkeys(PROJECTIONS, START)
        self._times: list[float] = []  # wall time of each rise of the lowest checkpoint
        self._lowest: list[Position] = []  # the lowest checkpoint from then on
        self._each: dict[str, tuple[list[float], list[Position]]] = {n: ([], []) for n in PROJECTIONS}
        self._moved = asyncio.Event()

    @classmethod
    async def start(cls, database_url: str) -> ReadModelClock:
        """Listen first, then read the checkpoints, so that no move falls between the two."""
        connection = await asyncpg.connect(database_url)
        clock = cls(connection)
        await connection.add_listener(CHANNEL, clock._heard)
        for name, xid, pos in await connection.fetch(_CHECKPOINTS, list(PROJECTIONS)):
            clock._move(name, Position(int(xid), pos), time.time())
        return clock

    async def close(self) -> None:
        await self._connection.close()

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is not None:
            self._move(*notice, time.time())

    def _move(self, name: str, position: Position, at: float) -> None:
        if name not in self._at or position <= self._at[name]:
            return
        self._at[name] = position
        times, moves = self._each[name]
        times.append(at)
        moves.append(position)
        lowest = min(self._at.values())
        if not self._lowest or lowest > self._lowest[-1]:
            self._times.append(at)
            self._lowest.append(lowest)
            self._moved.set()

    def passed(self, position: Position) -> float | None:
        """The wall time at which every read model had `position`; None if not yet."""
        index = bisect.bisect_left(self._lowest, position)
        return self._times[index] if index < len(self._times) else None

    async def lags(self, positions: Sequence[str]) -> list[float]:
        """Seconds from each position's commit until every read model had it (waits to hear the last)."""
        return (await self.stages(positions))["every read model"]

    async def stages(
        self, positions: Sequence[str], reached: Mapping[str, Callable[[Position], float | None]] = _NONE
    ) -> dict[str, list[float]]:
        """Seconds from each position's commit until each read model had it, until every one had it
        (key "every read model"), and until each of `reached` (a stage's wall time of a position) had it.
        """
        wanted = [Position.parse(p) for p in positions]
        if not wanted:
            return {"every read model": []}
        newest = max(wanted)
        async with asyncio.timeout(HEARD_TIMEOUT):
            while self.passed(newest) is None:
                self._moved.clear()
                await self._moved.wait()
        rows = await self._connection.fetch(_COMMITTED, [p.global_position for p in wanted])
        committed = {Position(xid, pos): at for xid, pos, at in rows}
        stages = {**reached, **{name: self._passed_by(name) for name in PROJECTIONS}}
        stages["every read model"] = self.passed
        lags: dict[str, list[float]] = {name: [] for name in stages}
        for position in wanted:
            for name, stage in stages.items():
                at = stage(position)
                if at is not None:  # every position is at or below the newest, which every read model passed
                    lags[name].append(max(0.0, at - committed[position]))
        return lags

    def _passed_by(self, name: str) -> Callable[[Position], float | None]:
        times, moves = self._each[name]

        def passed(position: Position) -> float | None:
            index = bisect.bisect_left(moves, position)
            return times[index] if index < len(times) else None

        return passed
