"""Per-client budgets in Redis, shared by every API process: token buckets of cost points and of writes.

One EVALSHA takes from both buckets atomically, on the Redis server's clock, for every charge made in the
same turn of the event loop. When Redis is
unreachable or slow, each process charges its own local buckets with the same limits for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from app import tracing
from app.admission.local import LocalBuckets, Taken
from app.backoff import Backoff
from app.bus.infra import REDIS_DOWN, text
from app.redis_line import RedisLine
from app.settings import Settings

log = logging.getLogger(__name__)

# How long a charge waits for Redis before charging the local buckets: far below redis_timeout,
# since every request waits for its charge.
CHARGE_TIMEOUT = 0.25
# Charges sent to Redis in one call at most; more in the same turn of the loop start another call.
MAX_BATCH = 256
# After a failure Redis is left alone this long (doubling up to the cap) before one charge tries it.
RETRY_FIRST = 1.0
RETRY_CAP = 10.0

Bucket = Literal["cost", "writes"]

# One call charges every charge of a batch, in order (two charges of one client see each other). KEYS: the
# cost and the write bucket of each charge. ARGV: capacity and refill per second of cost points, then of
# writes, then cost and writes of each charge. A missing hash is a full bucket; a refused charge writes
# nothing; a kept hash expires when it would have refilled, so an idle client costs no memory. A charge
# above a capacity never fits: it is told to wait for a full refill. The reply is one string (Redis would
# truncate Lua numbers, and one string is the cheapest reply to read): per charge, separated by ";",
# "allowed (1/0),refusing bucket or '',cost points left,writes left,seconds to retry".
CHARGE_SCRIPT = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local wcapacity, wrate = tonumber(ARGV[3]), tonumber(ARGV[4])
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
local function reply(allowed, bucket, left, wleft, retry)
  return table.concat({allowed, bucket, tostring(left), tostring(wleft), tostring(retry)}, ',')
end
local function charge(key, wkey, cost, writes)
  local left = level(key, capacity, rate)
  local wleft = wcapacity
  if writes > 0 then wleft = level(wkey, wcapacity, wrate) end
  local cost_wait = wait(cost, left, capacity, rate)
  local writes_wait = wait(writes, wleft, wcapacity, wrate)
  if cost > left or writes > wleft then
    local bucket = 'cost'
    if cost <= left or writes_wait > cost_wait then bucket = 'writes' end
    return reply(0, bucket, left, wleft, math.max(cost_wait, writes_wait))
  end
  left = left - cost
  take(key, left, capacity, rate)
  if writes > 0 then
    wleft = wleft - writes
    take(wkey, wleft, wcapacity, wrate)
  end
  return reply(1, '', left, wleft, 0)
end
local replies = {}
for i = 1, #KEYS / 2 do
  replies[i] = charge(KEYS[2 * i - 1], KEYS[2 * i], tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i]))
end
return table.concat(replies, ';')
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


@dataclass
class _Batch:
    """Charges made in one turn of the loop, each with the future its caller awaits."""

    probe: bool  # sent while charging locally: its answer tells whether Redis is back
    charges: list[tuple[str, int, int, asyncio.Future[Taken | None]]] = field(default_factory=list)

    def answer(self, replies: list[Taken] | None) -> None:
        """Give each charge its reply; None (Redis away) sends every one to the local buckets."""
        for index, (*_, future) in enumerate(self.charges):
            if not future.done():
                future.set_result(None if replies is None else replies[index])

    def fail(self, exc: BaseException) -> None:
        """Raise `exc` to every charge (cancel them when the call itself was cancelled)."""
        for *_, future in self.charges:
            if future.done():
                continue
            if isinstance(exc, Exception):
                future.set_exception(exc)
            else:
                future.cancel()


def _taken(reply: str) -> Taken:
    allowed, bucket, left, writes_left, retry_after = reply.split(",")
    return Taken(allowed == "1", bucket, float(left), float(writes_left), float(retry_after))


class Budgets:
    """Charge requests to per-client buckets shared through Redis, locally while Redis is away."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        for name in ("budget_capacity", "budget_refill", "write_budget_capacity", "write_budget_refill"):
            if getattr(settings, name) <= 0:
                raise ValueError(f"BOOKWORM_{name.upper()} must be positive")
        self._settings = settings
        self._script = redis.register_script(CHARGE_SCRIPT)
        self._line = RedisLine.of(redis)  # None: charged through redis-py (TLS, say)
        self._local = LocalBuckets(settings)
        self._backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        self._retry_at = 0.0
        self._local_since: float | None = None
        self._probing = False
        self._batch: _Batch | None = None
        self._flushing: set[asyncio.Task[None]] = set()

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
        batch = self._batch
        if batch is None or len(batch.charges) >= MAX_BATCH:
            # Charges made until the loop's next turn join this batch and go to Redis in one call.
            batch = self._batch = _Batch(probe=self._local_since is not None)
            self._probing = self._probing or batch.probe
            flush = asyncio.create_task(self._flush(batch), name="budget-charges")
            self._flushing.add(flush)
            flush.add_done_callback(self._flushing.discard)
        answer: asyncio.Future[Taken | None] = asyncio.get_running_loop().create_future()
        batch.charges.append((key, cost, writes, answer))
        return await answer

    async def _flush(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        try:
            replies = await self._send(batch)
        except BaseException as exc:
            batch.fail(exc)
            if not isinstance(exc, Exception):
                raise
            return
        batch.answer(replies)

    async def _send(self, batch: _Batch) -> list[Taken] | None:
        keys: list[str] = []
        args: list[int | float] = self._limits()
        for key, cost, writes, _ in batch.charges:
            keys += self._keys(key)
            args += [cost, writes]
        try:
            async with asyncio.timeout(CHARGE_TIMEOUT):
                with tracing.untraced():
                    replies = await self._run_script(keys, args)
        except REDIS_DOWN as exc:
            self._redis_failed(exc, batch.probe)
            return None
        finally:
            if batch.probe:
                self._probing = False
        if batch.probe:
            # Only a probe ends the fallback: an answer to a charge sent before Redis failed proves little.
            self._redis_answered()
        return [_taken(reply) for reply in text(replies).split(";")]

    async def _run_script(self, keys: list[str], args: list[int | float]) -> Any:
        line = self._line
        if line is None:
            return await self._script(keys=keys, args=args)
        try:
            return await line.call("EVALSHA", self._script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await line.call("EVAL", CHARGE_SCRIPT, len(keys), *keys, *args)  # and Redis keeps it

    async def aclose(self) -> None:
        """Close the connection the charges go through (redis-py's client is its owner's to close)."""
        if self._line is not None:
            await self._line.aclose()

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

    def _limits(self) -> list[int | float]:
        s = self._settings
        return [s.budget_capacity, s.budget_refill, s.write_budget_capacity, s.write_budget_refill]

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
