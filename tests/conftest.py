"""Shared fixtures: real PostgreSQL and Redis (the machine's when BOOKWORM_*_URL is set, else embedded).

Every test session gets its own database and its own Redis key/channel prefix, so runs never see
each other's data. Nothing here mocks PostgreSQL or Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.db import create_pool, migrate, plain_url
from app.eventstore import EventStore
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the fault scenarios (tests/faults) at full length and load; takes many minutes",
    )


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, Redis URL) of the servers under test."""
    database_url = os.environ.get("BOOKWORM_DATABASE_URL")
    redis_url = os.environ.get("BOOKWORM_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from app import embedded

    data_dir = Path(os.environ.get("BOOKWORM_TEST_DATA_DIR", ROOT / ".bookworm-test"))
    servers = embedded.attach_or_start(data_dir)
    try:
        yield database_url or servers.database_url, redis_url or servers.redis_url
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def make_settings(server_urls: tuple[str, str]) -> Iterator[Callable[[], Settings]]:
    """Return a factory of Settings, each with a new migrated database and Redis prefix."""
    database_url, redis_url = server_urls
    created: list[str] = []

    def make() -> Settings:
        settings = new_database_settings(database_url, redis_url)
        created.append(settings.redis_prefix.removeprefix("bwtest:"))
        return settings

    yield make
    drop_databases(database_url, redis_url, created)


def new_database_settings(database_url: str, redis_url: str) -> Settings:
    """Create and migrate a new database on the server of `database_url`; return settings that use it."""
    name = f"bookworm_test_{uuid.uuid4().hex[:12]}"
    _run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(database_url, name)
    _in_thread(lambda: migrate(url))
    return replace(
        Settings.from_env({}),
        database_url=url,
        redis_url=redis_url,
        redis_prefix=f"bwtest:{name}",
        data_dir=ROOT / ".bookworm-test",
        lease_ttl=3.0,
        relay_poll_interval=0.5,
    )


def drop_databases(database_url: str, redis_url: str, names: list[str]) -> None:
    """Drop the databases new_database_settings made, and their Redis keys."""
    for name in names:
        _run(_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _forget_redis_keys(redis_url, [f"bwtest:{name}:" for name in names])


@pytest.fixture(scope="session")
def settings(make_settings: Callable[[], Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def event_store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


def _forget_redis_keys(url: str, prefixes: list[str]) -> None:
    """Delete what the test sessions left in Redis (streams and groups under their prefixes)."""
    import redis as sync_redis

    with sync_redis.Redis.from_url(url) as client:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_with_database(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro: Awaitable[None]) -> None:
    """Run admin SQL from sync code that may itself be called inside the test event loop."""
    import asyncio

    _in_thread(lambda: asyncio.run(coro))  # type: ignore[arg-type]


def _in_thread(fn: Callable[[], object]) -> None:
    import threading

    error: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # pragma: no cover - re-raised below
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
