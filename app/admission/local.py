"""Process-local token buckets: the budgets' stand-in while Redis is unreachable."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from app.settings import Settings

# Clients remembered per process; the least recently charged is forgotten (its buckets refill at once).
MAX_LOCAL_CLIENTS = 10_000


class Taken(NamedTuple):
    """What a charge took, as the Redis script answers it: the bucket that refused, if any."""

    allowed: bool
    bucket: str
    left: float
    writes_left: float
    retry_after: float


class _Level(NamedTuple):
    tokens: float
    at: float


class LocalBuckets:
    """The same two buckets as the Redis script, kept in this process, for at most MAX_LOCAL_CLIENTS."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_clients: int = MAX_LOCAL_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {
            "cost": (settings.budget_capacity, settings.budget_refill),
            "writes": (settings.write_budget_capacity, settings.write_budget_refill),
        }
        self._levels: OrderedDict[tuple[str, str], _Level] = OrderedDict()
        self._max_clients = max_clients
        self._clock = clock

    def __len__(self) -> int:
        return len(self._levels)

    def charge(self, key: str, cost: int, writes: int) -> Taken:
        """Take `cost` points and `writes` writes from `key`'s local buckets, both or neither."""
        now = self._clock()
        left = self._level("cost", key, now)
        writes_left = self._level("writes", key, now) if writes > 0 else float(self._limits["writes"][0])
        cost_wait = self._wait("cost", cost, left)
        writes_wait = self._wait("writes", writes, writes_left)
        if cost > left or writes > writes_left:
            bucket = "writes" if cost <= left or writes_wait > cost_wait else "cost"
            return Taken(False, bucket, left, writes_left, max(cost_wait, writes_wait))
        self._store("cost", key, left - cost, now)
        if writes > 0:
            self._store("writes", key, writes_left - writes, now)
        return Taken(True, "", left - cost, writes_left - writes, 0.0)

    def _level(self, kind: str, key: str, now: float) -> float:
        capacity, rate = self._limits[kind]
        level = self._levels.get((kind, key))
        if level is None:
            return float(capacity)
        return min(float(capacity), level.tokens + max(0.0, now - level.at) * rate)

    def _wait(self, kind: str, amount: int, left: float) -> float:
        capacity, rate = self._limits[kind]
        if amount <= left:
            return 0.0
        if amount > capacity:
            return capacity / rate
        return (amount - left) / rate

    def _store(self, kind: str, key: str, tokens: float, now: float) -> None:
        if tokens >= self._limits[kind][0]:
            self._levels.pop((kind, key), None)  # a full bucket is the same as none
            return
        self._levels[(kind, key)] = _Level(tokens, now)
        self._levels.move_to_end((kind, key))
        while len(self._levels) > self._max_clients:
            self._levels.popitem(last=False)
