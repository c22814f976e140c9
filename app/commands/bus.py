"""The command bus: one transaction per attempt, idempotency keys, retries, and infrastructure errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

import asyncpg

from app.commands import idempotency
from app.commands.base import Command, CommandResult
from app.commands.basket_handlers import HANDLERS as BASKET_HANDLERS
from app.commands.catalog_handlers import HANDLERS as CATALOG_HANDLERS
from app.commands.ordering_handlers import HANDLERS as ORDERING_HANDLERS
from app.commands.rating_handlers import HANDLERS as RATING_HANDLERS
from app.commands.streams import Context, Handler
from app.db import unavailable_when_down
from app.domain.errors import ConflictError
from app.events.base import Metadata
from app.eventstore import ConcurrencyError, EventStore
from app.ids import new_id

# Lost races: a stream that moved, or PostgreSQL breaking a deadlock between two writers.
_CONCURRENT = (ConcurrencyError, asyncpg.TransactionRollbackError)


def default_handlers() -> dict[type[Command], Handler]:
    """Return the handler of every command the application knows."""
    handlers = dict(CATALOG_HANDLERS)
    handlers.update(BASKET_HANDLERS)
    handlers.update(ORDERING_HANDLERS)
    handlers.update(RATING_HANDLERS)
    return handlers


class CommandBus:
    """Run commands: load, decide and append in one PostgreSQL transaction per attempt."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        event_store: EventStore,
        *,
        handlers: Mapping[type[Command], Handler] | None = None,
        max_attempts: int = 3,
        acquire_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._store = event_store
        self._handlers = dict(default_handlers() if handlers is None else handlers)
        self._max_attempts = max_attempts
        self._acquire_timeout = acquire_timeout

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

        With `conn`, run inside that connection's open transaction (each attempt in a savepoint), so a
        process manager's command commits or rolls back with the event that caused it.
        """
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler is registered for {type(command).__name__}")
        if idempotency_key is not None:
            idempotency.check_key(idempotency_key)
        metadata = Metadata(actor=actor, correlation_id=correlation_id or new_id(), causation_id=causation_id)
        return await self._run(handler, command, metadata, idempotency_key, conn)

    @unavailable_when_down
    async def _run(
        self,
        handler: Handler,
        command: Command,
        metadata: Metadata,
        key: str | None,
        conn: asyncpg.Connection | None,
    ) -> CommandResult:
        attempt = 1
        while True:
            try:
                if conn is not None:
                    async with conn.transaction():  # a savepoint inside the caller's transaction
                        return await self._decide(conn, handler, command, metadata, key)
                return await self._attempt(handler, command, metadata, key)
            except _CONCURRENT as exc:
                if attempt >= self._max_attempts or not _may_retry(command):
                    raise ConflictError(_conflict_message(exc)) from None
            attempt += 1
            # Jitter so that writers that just collided do not collide again.
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))

    async def _attempt(
        self, handler: Handler, command: Command, metadata: Metadata, key: str | None
    ) -> CommandResult:
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn, conn.transaction():
            return await self._decide(conn, handler, command, metadata, key)

    async def _decide(
        self,
        conn: asyncpg.Connection,
        handler: Handler,
        command: Command,
        metadata: Metadata,
        key: str | None,
    ) -> CommandResult:
        if key is not None:
            earlier = await idempotency.claim(conn, metadata.actor, key, command)
            if earlier is not None:
                return earlier
        result = await handler(Context(conn, self._store, metadata), command)
        if key is not None:
            await idempotency.record(conn, metadata.actor, key, result)
        return result


def _may_retry(command: Command) -> bool:
    # A command pinned to an expected version asked to fail on any concurrent change.
    return command.retry_safe and getattr(command, "expected_version", None) is None


def _conflict_message(exc: Exception) -> str:
    what = f"Entity {exc.stream_id}" if isinstance(exc, ConcurrencyError) else "The data"
    return f"{what} was changed by someone else; reload and retry."
