"""PostgreSQL connection helpers: pools, URL forms, and migrations."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.domain.errors import UnavailableError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# A lost or unreachable PostgreSQL (TimeoutError, an OSError, covers an exhausted pool): wait and retry;
# never the request's or the event's fault.
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# What asyncpg raises on a connection whose server sent an error while it was idle (the FATAL "terminating
# connection due to administrator command" of a shutdown): it waits for a sync that never comes.
_BROKEN_PROTOCOL = ("another operation (2) is in progress", 'protocol is in the "failed" state')
# Driver errors that may mean PostgreSQL is down; is_postgres_down tells.
MAYBE_DOWN: tuple[type[BaseException], ...] = (
    *POSTGRES_DOWN,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; nothing was changed. Retry shortly."


def is_postgres_down(exc: BaseException) -> bool:
    """Tell whether `exc` means PostgreSQL cannot be reached, rather than a bug or a bad request."""
    if isinstance(exc, POSTGRES_DOWN):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        return any(broken in str(exc) for broken in _BROKEN_PROTOCOL)
    # asyncpg reports a connection or pool that went away as InterfaceError("... is closed/closing").
    return isinstance(exc, asyncpg.InterfaceError) and ("closed" in str(exc) or "closing" in str(exc))


def unavailable_when_down(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Make a read adapter raise UnavailableError, not a driver error, when PostgreSQL is down."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except MAYBE_DOWN as exc:
            if not is_postgres_down(exc):
                raise
            raise UnavailableError(UNAVAILABLE_MESSAGE) from None

    return call


def plain_url(url: str) -> str:
    """Return the libpq form (postgresql://) of a database URL."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + plain_url(url)[len("postgresql://") :]


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """A pool connection whose clean-up on release never turns a finished request into a failure."""

    async def reset(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        # By release time the transaction has committed or rolled back. If PostgreSQL cut the connection
        # just after (a shutdown), asyncpg's reset fails, terminates the connection and re-raises into
        # the request, which then reports a committed mutation as an error: drop the connection only.
        try:
            await super().reset(timeout=timeout)
        except Exception as exc:
            log.warning("dropping a PostgreSQL connection that could not be reset: %s", exc)
            self.terminate()


async def create_pool(url: str, *, size: int = 10) -> asyncpg.Pool:
    """Open an asyncpg pool; JSON columns stay text and are decoded by their owners."""
    pool = await asyncpg.create_pool(
        plain_url(url), min_size=1, max_size=size, command_timeout=30, connection_class=PooledConnection
    )
    assert pool is not None
    return pool


def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or spec.origin is None:
        raise RuntimeError("the migrations package is not installed")
    return Path(spec.origin).parent


def alembic_config(url: str) -> Config:
    directory = _migrations_dir()
    config = Config(str(directory / "alembic.ini"))
    config.set_main_option("script_location", str(directory))
    config.set_main_option("version_locations", str(directory / "versions"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Upgrade the database to the newest revision (blocking; safe to run from many processes)."""
    command.upgrade(alembic_config(url), "head")


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_current_head()


async def current_revision(conn: asyncpg.Connection) -> str | None:
    """Return the revision the database is at, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
    return value


__all__ = ["MigrationContext", "create_pool", "current_revision", "head_revision", "migrate", "plain_url"]
