"""Who owns the servers of a data directory: the flock on ``serve.lock`` and ``embedded.json``.

The owner takes the lock, writes embedded.json (state "starting", then "ready" with URLs and child pids),
and removes it before stopping its children; other processes read it to attach.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.embedded.children import Child, alive, terminate
from app.embedded.credentials import private_dir, write_private

LOCK_FILE = "serve.lock"
INFO_FILE = "embedded.json"


@dataclass(frozen=True)
class Wanted:
    """Which embedded servers to run: those whose URL is not configured."""

    postgres: bool = True
    valkey: bool = True

    @property
    def any(self) -> bool:
        return self.postgres or self.valkey

    def __str__(self) -> str:
        names = [name for name, on in (("PostgreSQL", self.postgres), ("Valkey", self.valkey)) if on]
        return " and ".join(names) or "nothing"


BOTH = Wanted()


@dataclass
class EmbeddedServers:
    """URLs of the embedded servers of one data directory, owned by this process or attached.

    A server that was not wanted (its URL is configured) has no URL and no pid here.
    """

    database_url: str | None = field(repr=False)  # both URLs hold a password
    redis_url: str | None = field(repr=False)
    data_dir: Path
    owner_pid: int
    postgres_pid: int | None
    valkey_pid: int | None
    _processes: list[Child] = field(default_factory=list, repr=False)
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def owned(self) -> bool:
        return self._lock_fd is not None

    def stop(self) -> None:
        """Stop the servers this process started (idempotent); attached servers keep running."""
        if self._lock_fd is None:
            return
        # Attachers stop trusting the file first, then see the lock free once the children are gone.
        (self.data_dir / INFO_FILE).unlink(missing_ok=True)
        terminate(self._processes)
        self._processes = []
        os.close(self._lock_fd)
        self._lock_fd = None


def prepare_dir(data_dir: Path) -> Path:
    """Return data_dir made absolute, creating it if needed, closed to other users."""
    # As root, PostgreSQL runs as a user of its own whose group may pass through (mode 0710).
    return private_dir(data_dir.expanduser().absolute(), 0o710 if os.geteuid() == 0 else 0o700)


def shown(data_dir: Path) -> str:
    """Return data_dir as the user would type it: relative to the working directory when inside it."""
    try:
        return "./" + str(data_dir.relative_to(Path.cwd()))
    except ValueError:
        return str(data_dir)


def try_lock(data_dir: Path) -> int | None:
    """Return the descriptor holding the lock of data_dir, or None if another process holds it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # made 0644 by older versions
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def live_owner_info(data_dir: Path, *, wait: float) -> dict[str, Any] | None:
    """Return the info file if its owner is alive (it is rewritten right after the lock is taken)."""
    deadline = time.monotonic() + wait
    while True:
        info = _read_info(data_dir)
        if info is not None and alive(info["owner_pid"]):
            return info
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def attached(data_dir: Path, info: dict[str, Any]) -> EmbeddedServers:
    """Return the servers described by the info file of their live owner."""
    return EmbeddedServers(
        database_url=info.get("database_url"),
        redis_url=info.get("redis_url"),
        data_dir=data_dir,
        owner_pid=info["owner_pid"],
        postgres_pid=info.get("postgres_pid"),
        valkey_pid=info.get("valkey_pid"),
    )


def announce_starting(data_dir: Path, *, exclusive: bool) -> dict[str, Any]:
    """Publish this process, which holds the lock, as the owner of servers that are starting."""
    owner = {"owner_pid": os.getpid(), "exclusive": exclusive, "command": _command(), "state": "starting"}
    _write_info(data_dir, owner)
    return owner


def announce_ready(owner: dict[str, Any], servers: EmbeddedServers) -> None:
    """Publish the URLs and pids of the servers, ready for other processes to attach."""
    public = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "postgres_pid": servers.postgres_pid,
        "valkey_pid": servers.valkey_pid,
    }
    _write_info(servers.data_dir, owner | public | {"state": "ready"})


def _read_info(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((data_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("owner_pid"), int) else None


def _write_info(data_dir: Path, info: dict[str, Any]) -> None:
    write_private(data_dir / INFO_FILE, json.dumps(info, indent=2) + "\n")  # the URLs hold passwords


def _command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200] if sys.argv else "?"
