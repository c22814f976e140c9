"""The command bus: read and decide, then one short write transaction; idempotency keys, retries, errors.

An attempt runs the handler first: it loads what it needs (plain reads, no transaction) and decides,
recording its writes. Only then does the bus open a transaction, for the idempotency row and the writes,
so a transaction id (which holds back every reader of all events) is held while SQL runs, never while a
stream is replayed or a decision computed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping

import asyncpg

from app import tracing
from app.backoff import Backoff
from app.commands import idempotency, snapshots
from app.commands.basket_handlers import HANDLERS as BASKET_HANDLERS
from app.commands.catalog_handlers import HANDLERS as CATALOG_HANDLERS
from app.commands.ordering_handlers import HANDLERS as ORDERING_HANDLERS
from app.commands.rating_handlers import HANDLERS as RATING_HANDLERS
from app.commands.results import CommandResult
from app.commands.streams import Context, Handler
from app.commands.targets import TargetStates
from app.db import unavailable_when_down
from app.domain.commands import Command
from app.domain.errors import ConflictError, DomainError
from app.events.base import Metadata
from app.eventstore import ConcurrencyError, EventStore, TargetChanged
from app.ids import new_id
from app.metrics.instruments import ERROR, OK, command_done

# Lost races: a stream that moved, or PostgreSQL breaking a deadlock between two writers.
_CONCURRENT = (ConcurrencyError, asyncpg.TransactionRollbackError)

# A command that asked for its change on the latest state (`_redecides`) re-decides after lost races
# until this long after its first attempt, and at most this many times: enough for fifty writers of one
# basket or one hot book, yet a stuck stream still answers soon. Other retries (a moved target, or any
# inside a caller's transaction) stop after the bus's `max_attempts`.
REDECIDE_DEADLINE = 2.0
REDECIDE_ATTEMPTS = 50
# A snapshot of a growing stream every this many events (Settings.snapshot_every).
SNAPSHOT_EVERY = 100
# Full-jitter exponential backoff: each wait is drawn from [0, ceiling), the ceiling doubling up to its cap.
RETRY_FIRST = 0.005
RETRY_CAP = 0.2


# The handler of every command the application knows: a new context's handlers are added here.
HANDLERS: Mapping[type[Command], Handler] = {
    **CATALOG_HANDLERS,
    **BASKET_HANDLERS,
    **ORDERING_HANDLERS,
    **RATING_HANDLERS,
}


class CommandBus:
    """Run commands: load and decide, then write in one short PostgreSQL transaction per attempt."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        event_store: EventStore,
        *,
        handlers: Mapping[type[Command], Handler] | None = None,
        max_attempts: int = 3,
        acquire_timeout: float = 5.0,
        redecide_deadline: float = REDECIDE_DEADLINE,
        redecide_attempts: int = REDECIDE_ATTEMPTS,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self._pool = pool
        self._store = event_store
        self._handlers = dict(HANDLERS if handlers is None else handlers)
        self._max_attempts = max_attempts
        self._acquire_timeout = acquire_timeout
        self._redecide_deadline = redecide_deadline
        self._redecide_attempts = redecide_attempts
        self._snapshot_every = snapshot_every
        self._targets = TargetStates()

    async def dispatch(
        self,
        command: Command,
        *,
        actor: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> CommandResult:
        """Run `command`; raise only DomainError subclasses for expected failures.

        With `conn`, run inside that connection's open transaction (reading there, and writing each
        attempt in a savepoint), so a process manager's command commits or rolls back with the event
        that caused it.
        """
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler is registered for {type(command).__name__}")
        if idempotency_key is not None:
            idempotency.check_key(idempotency_key)
        started, outcome = time.perf_counter(), ERROR
        try:
            with tracing.span(f"command {type(command).__name__}"):
                # The events carry this span's context: the relay, the consumers and the notices continue it.
                metadata = Metadata(
                    actor=actor,
                    correlation_id=correlation_id or new_id(),
                    causation_id=causation_id,
                    traceparent=tracing.traceparent(),
                )
                result = await self._run(handler, command, metadata, idempotency_key, conn)
            outcome = OK
            return result
        except DomainError as error:
            outcome = error.code
            raise
        finally:
            command_done(type(command).__name__, outcome, time.perf_counter() - started)

    @unavailable_when_down
    async def _run(
        self,
        handler: Handler,
        command: Command,
        metadata: Metadata,
        key: str | None,
        conn: asyncpg.Connection | None,
    ) -> CommandResult:
        attempts, deadline = self._retry_limits(command, conn)
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        attempt = 1
        while True:
            try:
                if conn is not None:
                    return await self._decide_and_write(conn, handler, command, metadata, key)
                return await self._attempt(handler, command, metadata, key)
            except _CONCURRENT as exc:
                # Full jitter, so that writers that just collided do not collide again.
                delay = random.uniform(0, backoff.next())
                late = asyncio.get_running_loop().time() + delay > deadline
                if attempt >= attempts or late or not _may_retry(command, exc):
                    raise ConflictError(_conflict_message(exc)) from None
            attempt += 1
            await asyncio.sleep(delay)

    def _retry_limits(self, command: Command, conn: asyncpg.Connection | None) -> tuple[int, float]:
        """Return how many attempts `command` gets and the loop time past which it stops retrying."""
        # Inside a caller's transaction every wait holds its locks: whatever the command, retry briefly.
        if _redecides(command) and conn is None:
            return self._redecide_attempts, asyncio.get_running_loop().time() + self._redecide_deadline
        return self._max_attempts, float("inf")

    async def _attempt(
        self, handler: Handler, command: Command, metadata: Metadata, key: str | None
    ) -> CommandResult:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            return await self._decide_and_write(conn, handler, command, metadata, key)

    async def _decide_and_write(
        self,
        conn: asyncpg.Connection,
        handler: Handler,
        command: Command,
        metadata: Metadata,
        key: str | None,
    ) -> CommandResult:
        """Answer a repeated key, or run the handler, write what it decided, and take due snapshots.

        The streams of ids minted for the command are presumed empty and not read: the append's expected
        version 0 checks it. An attempt that presumed so and failed is decided again at once, reading
        them, so that its error is the one the stored state gives (an id taken before a missing target).
        """
        if key is not None and (earlier := await idempotency.find(conn, metadata.actor, key, command)):
            return earlier
        minted = frozenset(getattr(command, name) for name in command.minted)
        ctx = self._context(conn, metadata, minted)
        try:
            return await self._decide_and_write_in(ctx, handler, command, key)
        except (DomainError, ConcurrencyError):
            if not ctx.presumed:
                raise
        return await self._decide_and_write_in(self._context(conn, metadata), handler, command, key)

    def _context(
        self, conn: asyncpg.Connection, metadata: Metadata, minted: frozenset[str] = frozenset()
    ) -> Context:
        return Context(
            conn,
            self._store,
            metadata,
            snapshot_every=self._snapshot_every,
            minted=minted,
            targets=self._targets,
        )

    async def _decide_and_write_in(
        self, ctx: Context, handler: Handler, command: Command, key: str | None
    ) -> CommandResult:
        conn = ctx.conn
        entity_id = await handler(ctx, command)
        _require_declared(command, ctx)
        if ctx.writes.empty and key is None:
            result = CommandResult(entity_id, ctx.writes.position)
        else:
            try:
                result, wrote = await self._write(conn, ctx, entity_id, command, key)
            except TargetChanged as exc:
                # The next attempt reads every target afresh: the check names one that moved, and any
                # other kept state may be as old (three renamed targets would otherwise take four tries).
                for stream_id in exc.held:
                    self._targets.forget(stream_id)
                raise
            if not wrote:
                return result  # the first result of the key: what this attempt decided was not written
        await snapshots.take(conn, ctx.due.values(), self._snapshot_every)
        return result

    async def _write(
        self, conn: asyncpg.Connection, ctx: Context, entity_id: str, command: Command, key: str | None
    ) -> tuple[CommandResult, bool]:
        """Write the key row and what the handler decided, in a transaction (or the caller's savepoint).

        Return the result, and whether it was this attempt's (not an earlier request's with the key).
        """
        actor = ctx.metadata.actor
        if key is None and ctx.writes.single_statement and not conn.is_in_transaction():
            # One statement commits alone: no BEGIN and COMMIT round trips.
            return CommandResult(entity_id, await ctx.writes.run(conn, self._store, ctx.metadata)), True
        async with conn.transaction():
            # The key row first: a concurrent repeat waits on it, then answers with this result.
            if key is not None and (earlier := await idempotency.claim(conn, actor, key, command)):
                return earlier, False
            result = CommandResult(entity_id, await ctx.writes.run(conn, self._store, ctx.metadata))
            if key is not None:
                await idempotency.record(conn, actor, key, result)
            return result, True


def _require_declared(command: Command, ctx: Context) -> None:
    """Refuse to append an event type the command does not declare in `emits` (a bug, like no handler)."""
    for event in ctx.writes.events():
        if type(event) not in command.emits:
            name = type(command).__name__
            raise TypeError(f"{name} decided {type(event).__name__}, which {name}.emits does not declare")


def _may_retry(command: Command, exc: Exception) -> bool:
    # A TargetChanged says only that a stream it read moved: its own expectations are checked again.
    return isinstance(exc, TargetChanged) or _redecides(command)


def _redecides(command: Command) -> bool:
    """Whether a lost race is no conflict for `command`: it asked for its change on the latest state."""
    # A command pinned to an expected version asked to fail on any concurrent change.
    return command.retry_safe and getattr(command, "expected_version", None) is None


def _conflict_message(exc: Exception) -> str:
    what = f"Entity {exc.stream_id}" if isinstance(exc, ConcurrencyError) else "The data"
    return f"{what} was changed by someone else; reload and retry."
