"""PostgreSQL connection helpers: pools, URL forms, and migrations."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.domain.errors import UnavailableError

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
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable; nothing was changed. Retry shortly."


def is_postgres_down(exc: BaseException) -> bool:
    """Tell whether `exc` means PostgreSQL cannot be reached, rather than a bug or a bad request."""
    if isinstance(exc, POSTGRES_DOWN):
        return True
    # asyncpg reports a connection or pool that went away as InterfaceError("... is closed/closing").
    return isinstance(exc, asyncpg.InterfaceError) and ("closed" in str(exc) or "closing" in str(exc))


def unavailable_when_down(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Make a read adapter raise UnavailableError, not a driver error, when PostgreSQL is down."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (*POSTGRES_DOWN, asyncpg.InterfaceError) as exc:
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


async def create_pool(url: str, *, size: int = 10) -> asyncpg.Pool:
    """Open an asyncpg pool; JSON columns stay text and are decoded by their owners."""
    pool = await asyncpg.create_pool(plain_url(url), min_size=1, max_size=size, command_timeout=30)
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
