"""Start PostgreSQL and Valkey as the owner of a data directory, after any left by a previous owner."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from pathlib import Path

from app.embedded.children import START_TIMEOUT, STOP_TIMEOUT, Child, alive, terminate
from app.embedded.credentials import load_credentials, socket_dir
from app.embedded.errors import EmbeddedError
from app.embedded.ownership import (
    INFO_FILE,
    EmbeddedServers,
    Wanted,
    announce_ready,
    announce_starting,
    shown,
)
from app.embedded.postgres import (
    POSTGRES_STOP_SIGNAL,
    SOCKET_PORT,
    postgres_url,
    prepare_database,
    spawn_postgres,
)
from app.embedded.valkey import VALKEY_STOP_SIGNAL, spawn_valkey, valkey_url, wait_for_valkey

log = logging.getLogger(__package__)  # "app.embedded" for every module of the package

SERVER_NAMES = ("postgres", "valkey-server")  # process names (comm) of the servers we start


def start_owned(data_dir: Path, lock_fd: int, wanted: Wanted, *, exclusive: bool) -> EmbeddedServers:
    """Start the wanted servers of data_dir, whose lock lock_fd holds, and publish them in the info file."""
    if threading.current_thread() is not threading.main_thread():
        os.close(lock_fd)
        # PR_SET_PDEATHSIG fires when the *thread* that started the child exits, not the process.
        raise EmbeddedError("embedded servers must be started from the main thread")
    owner = announce_starting(data_dir, exclusive=exclusive)
    try:
        servers = _start_children(data_dir, lock_fd, wanted)
    except BaseException:
        (data_dir / INFO_FILE).unlink(missing_ok=True)
        os.close(lock_fd)
        raise
    announce_ready(owner, servers)
    atexit.register(servers.stop)
    # Not the URLs: they hold the passwords.
    log.info("embedded %s on the sockets in %s", wanted, shown(socket_dir(data_dir)))
    return servers


def _start_children(data_dir: Path, lock_fd: int, wanted: Wanted) -> EmbeddedServers:
    processes: list[Child] = []
    postgres = valkey = None
    try:
        credentials = load_credentials(data_dir)
        _wait_for_leftovers(data_dir)
        if wanted.postgres:
            postgres = spawn_postgres(data_dir, credentials.postgres)
            processes.append((postgres, POSTGRES_STOP_SIGNAL))
        if wanted.valkey:
            valkey = spawn_valkey(data_dir, credentials.valkey)
            processes.append((valkey, VALKEY_STOP_SIGNAL))
        deadline = time.monotonic() + START_TIMEOUT
        if valkey is not None:
            wait_for_valkey(valkey, data_dir, credentials.valkey, deadline)
        if postgres is not None:
            prepare_database(postgres, data_dir, credentials.postgres, deadline)
    except BaseException:
        terminate(processes)
        raise
    return EmbeddedServers(
        database_url=postgres_url(data_dir, credentials.postgres) if postgres is not None else None,
        redis_url=valkey_url(data_dir, credentials.valkey) if valkey is not None else None,
        data_dir=data_dir,
        owner_pid=os.getpid(),
        postgres_pid=postgres.pid if postgres is not None else None,
        valkey_pid=valkey.pid if valkey is not None else None,
        _processes=processes,
        _lock_fd=lock_fd,
    )


def _wait_for_leftovers(data_dir: Path) -> None:
    """Wait until the servers of a previous owner of data_dir have exited, then drop its lock files.

    We hold the lock, so a server still running in data_dir is an orphan of a killed owner, shutting
    down on its death signal. A stale postmaster.pid (or socket lock file) whose pid was since reused by
    an unrelated process would make PostgreSQL refuse to start, so it is removed once no server is left.
    """
    directories = {os.path.realpath(data_dir / name) for name in ("postgres", "postgres.initdb", "valkey")}
    deadline = time.monotonic() + STOP_TIMEOUT
    while leftovers := _servers_in(directories):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"servers {leftovers} still run in {data_dir}; stop them and retry")
        time.sleep(0.1)
    if Path("/proc/self").exists():
        (data_dir / "postgres" / "postmaster.pid").unlink(missing_ok=True)
        (socket_dir(data_dir) / f".s.PGSQL.{SOCKET_PORT}.lock").unlink(missing_ok=True)


def _servers_in(directories: set[str]) -> list[int]:
    """Return pids of live servers working in directories (each server's cwd is its data directory)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() in SERVER_NAMES and os.readlink(
                entry / "cwd"
            ) in directories:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return [pid for pid in found if alive(pid)]
