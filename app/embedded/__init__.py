"""Embedded PostgreSQL and Valkey: child processes that die with their parent, data in one directory.

Only what is not configured is embedded: with BOOKWORM_DATABASE_URL alone set, only Valkey starts; with
BOOKWORM_REDIS_URL alone, only PostgreSQL; with both, nothing.

Layout of a data directory (mode 0700): ``postgres/`` (the cluster), ``valkey/`` (append-only files),
``run/`` (mode 0700: the servers' Unix sockets, their only listeners), ``credentials.json`` (mode 0600: the
passwords, made on the first start), ``valkey.conf``, ``postgres.log``, ``valkey.log``, ``serve.lock``
(flock held by the process that owns the servers) and ``embedded.json`` (mode 0600: owner pid, URLs with
the passwords and child pids, read by processes that attach).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.embedded.children import START_TIMEOUT
from app.embedded.errors import DataDirInUse, EmbeddedError
from app.embedded.launch import start_owned
from app.embedded.ownership import (
    BOTH,
    EmbeddedServers,
    Wanted,
    attached,
    live_owner_info,
    prepare_dir,
    shown,
    try_lock,
)
from app.settings import Settings

__all__ = [
    "BOTH",
    "DataDirInUse",
    "EmbeddedError",
    "EmbeddedServers",
    "Wanted",
    "attach_or_start",
    "resolve",
    "start",
    "wanted_by",
]


def start(data_dir: Path, wanted: Wanted = BOTH) -> EmbeddedServers:
    """Start the servers of data_dir for `bookworm serve`, holding the directory for this process's life."""
    data_dir = prepare_dir(data_dir)
    lock_fd = try_lock(data_dir)
    if lock_fd is None:
        info = live_owner_info(data_dir, wait=2.0)
        raise DataDirInUse(shown(data_dir), info["owner_pid"] if info else None, info)
    return start_owned(data_dir, lock_fd, wanted, exclusive=True)


def attach_or_start(data_dir: Path, wanted: Wanted = BOTH) -> EmbeddedServers:
    """Return the servers of data_dir: those of the live process that owns them, or new ones owned here."""
    data_dir = prepare_dir(data_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        lock_fd = try_lock(data_dir)
        if lock_fd is not None:
            return start_owned(data_dir, lock_fd, wanted, exclusive=False)
        info = live_owner_info(data_dir, wait=0.0)
        if info is not None and info.get("state") == "ready":
            return _providing(attached(data_dir, info), wanted, info)
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"the embedded servers of {shown(data_dir)} are locked but never became ready"
            )
        time.sleep(0.2)


def _providing(servers: EmbeddedServers, wanted: Wanted, info: dict[str, Any]) -> EmbeddedServers:
    """Return the attached servers if they include every one wanted; else say which URL to set."""
    for name, needed, url, setting in (
        ("PostgreSQL", wanted.postgres, servers.database_url, "BOOKWORM_DATABASE_URL"),
        ("Valkey", wanted.valkey, servers.redis_url, "BOOKWORM_REDIS_URL"),
    ):
        if needed and url is None:
            raise EmbeddedError(
                f"the embedded servers of {shown(servers.data_dir)} run no {name} (pid {servers.owner_pid}: "
                f"{info.get('command', '?')} has {setting} set): set it here too, or stop that process"
            )
    return servers


def wanted_by(settings: Settings, *, redis: bool = True) -> Wanted:
    """Return the servers to embed: those whose URL is not configured (Valkey only if Redis is used)."""
    return Wanted(postgres=not settings.database_url, valkey=redis and not settings.redis_url)


def resolve(
    settings: Settings, *, exclusive: bool, redis: bool = True
) -> tuple[Settings, EmbeddedServers | None]:
    """Fill missing database/Redis URLs from the embedded servers of settings.data_dir (only those).

    With `redis` False (a command that uses PostgreSQL alone), no Valkey is embedded for it.
    """
    wanted = wanted_by(settings, redis=redis)
    if not wanted.any:
        return settings, None
    if exclusive:
        servers = start(settings.data_dir, wanted)
    else:
        servers = attach_or_start(settings.data_dir, wanted)
    resolved = replace(
        settings,
        database_url=settings.database_url or servers.database_url,
        redis_url=settings.redis_url or servers.redis_url,
    )
    return resolved, servers
