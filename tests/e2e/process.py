"""Running a real `bookworm` process for end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bookworm_command() -> list[str]:
    """Return the argv prefix that runs the installed `bookworm` command."""
    script = Path(sys.executable).parent / "bookworm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def wait_ready(
    base_url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    path: str = "/readyz",
    name: str = "bookworm serve",
) -> None:
    """Wait until `path` answers 200; fail the test with the log tail if the server exits or stalls."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base_url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} not ready within {STARTUP_TIMEOUT:g} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ask `process` to stop; kill it if it has not within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
