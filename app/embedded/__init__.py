"""Embedded PostgreSQL and Valkey: child processes that die with their parent, data in one directory.

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

from app.embedded.children import START_TIMEOUT
from app.embedded.errors import DataDirInUse, EmbeddedError
from app.embedded.launch import start_owned
from app.embedded.ownership import EmbeddedServers, attached, live_owner_info, prepare_dir, shown, try_lock
from app.settings import Settings

__all__ = ["DataDirInUse", "EmbeddedError", "EmbeddedServers", "attach_or_start", "resolve", "start"]


def start(data_dir: Path) -> EmbeddedServers:
    """Start the servers of data_dir for `bookworm serve`, holding the directory for this process's life."""
    data_dir = prepare_dir(data_dir)
    lock_fd = try_lock(data_dir)
    if lock_fd is None:
        info = live_owner_info(data_dir, wait=2.0)
        raise DataDirInUse(shown(data_dir), info["owner_pid"] if info else None, info)
    return start_owned(data_dir, lock_fd, exclusive=True)


def attach_or_start(data_dir: Path) -> EmbeddedServers:
    """Return the servers of data_dir: those of the live process that owns them, or new ones owned here."""
    data_dir = prepare_dir(data_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        lock_fd = try_lock(data_dir)
        if lock_fd is not None:
            return start_owned(data_dir, lock_fd, exclusive=False)
        info = live_owner_info(data_dir, wait=0.0)
        if info is not None and info.get("state") == "ready":
            return attached(data_dir, info)
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"the embedded servers of {shown(data_dir)} are locked but never became ready"
            )
        time.sleep(0.2)


def resolve(settings: Settings, *, exclusive: bool) -> tuple[Settings, EmbeddedServers | None]:
    """Fill missing database/Redis URLs from the embedded servers of settings.data_dir."""
    if settings.database_url and settings.redis_url:
        return settings, None
    servers = start(settings.data_dir) if exclusive else attach_or_start(settings.data_dir)
    resolved = replace(
        settings,
        database_url=settings.database_url or servers.database_url,
        redis_url=settings.redis_url or servers.redis_url,
    )
    return resolved, servers
