"""Before a command starts its work: check that PostgreSQL and Redis answer; `serve`'s start-up block."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import redis

from app.cli_tasks import first_line
from app.db import plain_url
from app.embedded.ownership import shown
from app.settings import Settings

REACH_TIMEOUT = 10.0  # seconds to connect to each server before calling it unreachable


class ServerUnreachable(Exception):
    """PostgreSQL or Redis does not answer: the message names which, where, and why, in one line."""


def check_servers(settings: Settings, *, redis: bool = True) -> None:
    """Raise ServerUnreachable unless PostgreSQL takes a login and (if asked) Redis answers PING."""
    assert settings.database_url
    _check_postgres(settings.database_url)
    if redis:
        assert settings.redis_url
        _check_redis(settings.redis_url)


def _check_postgres(url: str) -> None:
    async def connect() -> None:
        connection = await asyncpg.connect(plain_url(url), timeout=REACH_TIMEOUT)
        await connection.close()

    try:
        asyncio.run(connect())
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServerUnreachable(f"cannot connect to PostgreSQL at {redact(url)}: {first_line(exc)}") from None


def _check_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=REACH_TIMEOUT, socket_timeout=REACH_TIMEOUT)
        with client:
            client.ping()
    except (OSError, ValueError, redis.RedisError) as exc:
        raise ServerUnreachable(f"cannot connect to Redis at {redact(url)}: {first_line(exc)}") from None


def redact(url: str) -> str:
    """Return `url` with its password hidden, fit to print."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def banner(configured: Settings, resolved: Settings, *, api_processes: int, workers: bool) -> str:
    """Return what `serve` prints once it listens: where to go, which servers, which processes."""
    base = f"http://{_shown_host(configured.host)}:{configured.port}"
    graphql = "GraphiQL:" if configured.graphiql else "GraphQL:"
    plural = "es" if api_processes > 1 else ""
    processes = f"{api_processes} API process{plural} on {configured.host}:{configured.port}, " + (
        "1 worker (relay, consumers, scheduler)" if workers else "no worker (run `bookworm worker`)"
    )
    lines = [
        f"Bookworm: {base}",
        f"  {graphql:<12}{base}/graphql",
        f"  {'PostgreSQL:':<12}{_origin(configured.database_url, 'BOOKWORM_DATABASE_URL', resolved)}",
        f"  {'Redis:':<12}{_origin(configured.redis_url, 'BOOKWORM_REDIS_URL', resolved, 'Valkey')}",
        f"  {'Processes:':<12}{processes}",
        f"Stop with Ctrl-C or SIGTERM (supervisor pid {os.getpid()}).",
    ]
    return "\n".join(lines)


def _origin(url: str | None, variable: str, resolved: Settings, embedded: str = "") -> str:
    if url:
        return f"{redact(url)} (from {variable})"
    what = f"embedded {embedded}" if embedded else "embedded"
    return f"{what} (data in {shown(resolved.data_dir.absolute())})"


def _shown_host(host: str) -> str:
    """Return the host of a URL that reaches `host` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
