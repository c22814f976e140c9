"""PostgreSQL connection helpers: pools, URL forms, and migrations."""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.domain.errors import UnavailableError
from app.settings import Settings

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
# PostgreSQL cancelled the statement: it ran past the connection's statement_timeout (or an operator
# cancelled it). The transaction rolled back, so the same answer as a lost database fits.
TOO_SLOW_MESSAGE = "The database took too long to answer; nothing was changed. Retry shortly."


def is_postgres_down(exc: BaseException) -> bool:
    """Tell whether `exc` means PostgreSQL cannot be reached, rather than a bug or a bad request."""
    if isinstance(exc, POSTGRES_DOWN):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        return any(broken in str(exc) for broken in _BROKEN_PROTOCOL)
    # asyncpg reports a connection or pool that went away as InterfaceError("... is closed/closing").
    return isinstance(exc, asyncpg.InterfaceError) and ("closed" in str(exc) or "closing" in str(exc))


def unavailable_when_down(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Make an adapter raise UnavailableError, not a driver error, when PostgreSQL is down or too slow."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except asyncpg.QueryCanceledError:
            raise UnavailableError(TOO_SLOW_MESSAGE) from None
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


class SessionlessConnection(PooledConnection):
    """A connection of a pool whose users keep no session state: released with no other round trip.

    API requests and the workers hold no session state: their advisory locks are transaction-scoped
    (the relay's session lock and every LISTEN live on connections of their own, outside the pools),
    their settings `SET LOCAL`, their cursors live inside a transaction. So the full reset (unlock all,
    close all, unlisten, reset all: one more round trip per checkout) is left out; asyncpg still rolls
    back a transaction left open and drops the listener callbacks.
    """

    def get_reset_query(self) -> str:
        return ""


API_APPLICATION = "bookworm-api"
WORKER_APPLICATION = "bookworm-worker"
# A transaction named so (eventstore.as_projector(), for itself only) can never append events, and commit
# order does not wait for it (migration 0015): every projection batch and rebuild transaction is.
PROJECTOR_APPLICATION = "bookworm-projector"


@dataclass(frozen=True, slots=True)
class Session:
    """How a pool's connections name themselves to PostgreSQL, and how long they may take.

    A limit of 0 leaves the server's own setting in force.
    """

    application_name: str = "bookworm"
    statement_timeout: float = 0.0  # seconds one statement may run
    idle_in_transaction_timeout: float = 0.0  # seconds a transaction may wait on its client
    holds_session_state: bool = True  # False: a release only ends an open transaction (SessionlessConnection)

    def server_settings(self) -> dict[str, str]:
        """Return the settings sent when each connection starts (milliseconds for the limits)."""
        settings = {"application_name": self.application_name}
        if self.statement_timeout > 0:
            settings["statement_timeout"] = str(max(1, round(self.statement_timeout * 1000)))
        if self.idle_in_transaction_timeout > 0:
            timeout = max(1, round(self.idle_in_transaction_timeout * 1000))
            settings["idle_in_transaction_session_timeout"] = str(timeout)
        return settings


def api_session(settings: Settings) -> Session:
    """The session of connections that serve API requests: named `bookworm-api`, with both limits.

    A request then cannot hold a connection (or, writing, a transaction id that holds back every reader
    of all events) for longer than the limits; past them it answers UNAVAILABLE.
    """
    return Session(
        application_name=API_APPLICATION,
        statement_timeout=settings.db_statement_timeout,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        holds_session_state=False,
    )


def worker_session() -> Session:
    """The session of connections that (also) run the workers: named, without limits.

    A projection statement cancelled halfway would look like the event's fault and be parked, so the
    workers' statements take as long as they need; their transactions are short by construction. Like
    the API's, they hold no session state, so a release costs no reset round trip (every batch and
    every checkpoint move checks a connection out).
    """
    return Session(application_name=WORKER_APPLICATION, holds_session_state=False)


async def create_pool(url: str, *, size: int = 10, session: Session | None = None) -> asyncpg.Pool:
    """Open an asyncpg pool; JSON columns stay text and are decoded by their owners."""
    session = session or Session()
    pool = await asyncpg.create_pool(
        plain_url(url),
        min_size=1,
        max_size=size,
        command_timeout=30,
        connection_class=PooledConnection if session.holds_session_state else SessionlessConnection,
        server_settings=session.server_settings(),
    )
    assert pool is not None
    return pool


async def lift_limits(conn: asyncpg.Connection) -> None:
    """Let the rest of this transaction take as long as it needs (verify, rebuild: no API request waits)."""
    await conn.execute("SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0")


async def as_projector(conn: asyncpg.Connection) -> None:
    """Name the rest of this transaction a projector's: it can no longer append, and holds no event back.

    Raises asyncpg.RaiseError in a transaction that has appended already.
    """
    await conn.execute("SELECT eventstore.as_projector()")


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


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_current_head()


async def current_revision(conn: asyncpg.Connection) -> str | None:
    """Return the revision the database is at, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return None
    value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
    return value


__all__ = [
    "MigrationContext",
    "Session",
    "api_session",
    "as_projector",
    "create_pool",
    "current_revision",
    "head_revision",
    "lift_limits",
    "migrate",
    "plain_url",
    "worker_session",
]
