"""Helpers for the embedded-server tests: scratch data directories, one-query SQL, process waits."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg


@contextmanager
def scratch_data_dir() -> Iterator[Path]:
    """Yield a data directory that does not exist yet, removed with everything in it afterwards."""
    # Not under tmp_path: every new pytest session resets /tmp/pytest-of-<user> to mode 0700, and when we
    # run as root, PostgreSQL runs as another user that must be able to traverse the path.
    base = Path(tempfile.mkdtemp(prefix="bookworm-embedded-"))
    try:
        yield base / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def sql(url: str, query: str) -> Any:
    """Run one query on a private event loop in a thread (tests here are synchronous on purpose)."""

    async def run() -> Any:
        connection = await asyncpg.connect(url)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(run()))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def alive(pid: int) -> bool:
    """Return whether pid runs; a zombie (exited, not yet reaped by init) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
