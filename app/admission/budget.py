"""Per-client budgets in Redis, shared by every API process: token buckets of cost points and of writes.

One EVALSHA per charge takes from both buckets atomically, on the Redis server's clock. When Redis is
unreachable or slow, each process charges its own local buckets with the same limits for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from app.admission.local import LocalBuckets, Taken
from app.backoff import Backoff
from app.bus.infra import REDIS_DOWN, text
from app.settings import Settings

log = logging.getLogger(__name__)

# How long a charge waits for Redis before charging the local buckets: far below redis_timeout,
# since every request waits for its charge.
CHARGE_TIMEOUT = 0.25
# After a failure Redis is left alone this long (doubling up to the cap) before one charge tries it.
RETRY_FIRST = 1.0
RETRY_CAP = 10.0

Bucket = Literal["cost", "writes"]

# KEYS: the cost bucket, the write bucket. ARGV: cost, capacity, refill per second, then the same three
# for writes. A missing hash is a full bucket; a refused charge writes nothing; a kept hash expires when
# it would have refilled, so an idle client costs no memory. A charge above a capacity never fits: it is
# told to wait for a full refill. Fractions are returned as strings: Redis truncates Lua numbers.
# Reply: {allowed (1/0), refusing bucket or "", cost points left, writes left, seconds to retry}.
CHARGE_SCRIPT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local function level(key, capacity, rate)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or ts == nil then return capacity end
  return math.min(capacity, tokens + math.max(0, now - ts) * rate)
end
local function wait(amount, left, capacity, rate)
  if amount <= left then return 0 end
  if amount > capacity then return capacity / rate end
  return (amount - left) / rate
end
local function take(key, left, capacity, rate)
  if left >= capacity then redis.call('DEL', key) return end
  redis.call('HSET', key, 'tokens', left, 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((capacity - left) / rate * 1000) + 1)
end
local cost, capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local writes, wcapacity, wrate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local left = level(KEYS[1], capacity, rate)
local wleft = wcapacity
if writes > 0 then wleft = level(KEYS[2], wcapacity, wrate) end
local cost_wait = wait(cost, left, capacity, rate)
local writes_wait = wait(writes, wleft, wcapacity, wrate)
if cost > left or writes > wleft then
  local bucket = 'cost'
  if cost <= left or writes_wait > cost_wait then bucket = 'writes' end
  return {0, bucket, tostring(left), tostring(wleft), tostring(math.max(cost_wait, writes_wait))}
end
left = left - cost
take(KEYS[1], left, capacity, rate)
if writes > 0 then
  wleft = wleft - writes
  take(KEYS[2], wleft, wcapacity, wrate)
end
return {1, '', tostring(left), tostring(wleft), '0'}
"""


@dataclass(frozen=True)
class Charge:
    """The outcome of one charge, and what the client has left."""

    allowed: bool
    cost: int
    remaining: float
    capacity: int
    refill_rate: float
    retry_after: float = 0.0
    bucket: Bucket | None = None
    writes: int = 0
    writes_remaining: float = 0.0
    write_capacity: int = 0
    write_refill_rate: float = 0.0

    def extensions(self) -> dict[str, Any]:
        """Return the response's `extensions.cost`, shaped like Shopify's."""
        cost: dict[str, Any] = {
            "requestedQueryCost": self.cost,
            "throttleStatus": _status(self.capacity, self.remaining, self.refill_rate),
        }
        if self.writes:
            cost["requestedWrites"] = self.writes
            cost["writeThrottleStatus"] = _status(
                self.write_capacity, self.writes_remaining, self.write_refill_rate
            )
        return cost


def _status(capacity: int, available: float, rate: float) -> dict[str, Any]:
    return {"maximumAvailable": capacity, "currentlyAvailable": int(available), "restoreRate": rate}


class Budgets:
    """Charge requests to per-client buckets shared through Redis, locally while Redis is away."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        for name in ("budget_capacity", "budget_refill", "write_budget_capacity", "write_budget_refill"):
            if getattr(settings, name) <= 0:
                raise ValueError(f"BOOKWORM_{name.upper()} must be positive")
        self._settings = settings
        self._script = redis.register_script(CHARGE_SCRIPT)
        self._local = LocalBuckets(settings)
        self._backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        self._retry_at = 0.0
        self._local_since: float | None = None
        self._probing = False

    async def charge(self, key: str, cost: int, writes: int = 0) -> Charge:
        """Take `cost` points and `writes` writes from `key`'s buckets, both or neither."""
        if cost < 0 or writes < 0:
            raise ValueError("a charge cannot be negative")
        if self._redis_worth_trying():
            taken = await self._charge_redis(key, cost, writes)
        else:
            taken = None
        if taken is None:
            taken = self._local.charge(key, cost, writes)
        return self._charge_from(taken, cost, writes)

    async def _charge_redis(self, key: str, cost: int, writes: int) -> Taken | None:
        probe = self._probing = self._local_since is not None
        try:
            async with asyncio.timeout(CHARGE_TIMEOUT):
                reply = await self._script(keys=self._keys(key), args=self._args(cost, writes))
        except REDIS_DOWN as exc:
            self._redis_failed(exc, probe)
            return None
        finally:
            if probe:
                self._probing = False
        if probe:
            # Only a probe ends the fallback: an answer to a charge sent before Redis failed proves little.
            self._redis_answered()
        allowed, bucket, left, writes_left, retry_after = reply
        return Taken(
            int(allowed) == 1,
            text(bucket),
            float(text(left)),
            float(text(writes_left)),
            float(text(retry_after)),
        )

    def _redis_worth_trying(self) -> bool:
        if self._local_since is None:
            return True
        # One charge at a time finds out whether Redis is back; the rest stay local meanwhile.
        return not self._probing and time.monotonic() >= self._retry_at

    def _redis_failed(self, exc: BaseException, probe: bool) -> None:
        if self._local_since is None:
            self._local_since = time.monotonic()
            log.warning("budgets: Redis unavailable (%r); charging per-process buckets until it answers", exc)
        elif not probe:
            return  # one more charge that was under way when Redis failed: the next try is set already
        self._retry_at = time.monotonic() + self._backoff.next()

    def _redis_answered(self) -> None:
        away = time.monotonic() - (self._local_since or 0.0)
        log.info("budgets: Redis answers again after %.1f s; charging the shared buckets", away)
        self._local_since = None
        self._backoff.reset()

    def _keys(self, key: str) -> list[str]:
        prefix = self._settings.redis_prefix
        return [f"{prefix}:budget:cost:{key}", f"{prefix}:budget:writes:{key}"]

    def _args(self, cost: int, writes: int) -> list[int | float]:
        s = self._settings
        return [
            cost,
            s.budget_capacity,
            s.budget_refill,
            writes,
            s.write_budget_capacity,
            s.write_budget_refill,
        ]

    def _charge_from(self, taken: Taken, cost: int, writes: int) -> Charge:
        s = self._settings
        return Charge(
            allowed=taken.allowed,
            cost=cost,
            remaining=taken.left,
            capacity=s.budget_capacity,
            refill_rate=s.budget_refill,
            retry_after=taken.retry_after,
            bucket=_bucket(taken.bucket),
            writes=writes,
            writes_remaining=taken.writes_left,
            write_capacity=s.write_budget_capacity,
            write_refill_rate=s.write_budget_refill,
        )


def _bucket(name: str) -> Bucket | None:
    if name == "cost":
        return "cost"
    if name == "writes":
        return "writes"
    return None
