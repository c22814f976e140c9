"""A PostgreSQL database and a Redis key prefix of one benchmark run alone, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from app.db import plain_url


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at the database `name` on the same server."""
    return str(urlunsplit(urlsplit(plain_url(url))._replace(path=f"/{name}")))


def database_of(url: str) -> str:
    """Return the name of the database `url` points at."""
    return urlsplit(url).path.lstrip("/")


@asynccontextmanager
async def scratch_database(url: str, label: str) -> AsyncIterator[str]:
    """Create an empty database named `<label>_<random>` on `url`'s server; drop it afterwards."""
    name = f"{label}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def scratch_prefix(url: str, label: str) -> AsyncIterator[str]:
    """Return an unused key prefix `<label>-<random>`; delete every key under it afterwards."""
    prefix = f"{label}-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = aioredis.Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
