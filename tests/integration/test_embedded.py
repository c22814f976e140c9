"""Embedded PostgreSQL and Valkey: start, persistence, exclusive ownership, attach, death with the parent."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from app import embedded

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")

# Starts the servers of argv[1] as `bookworm serve` would, reports them, and waits to be killed.
HOLDER = """
import json, sys, time
from pathlib import Path
from app import embedded
servers = embedded.start(Path(sys.argv[1]))
print(json.dumps({"database_url": servers.database_url, "redis_url": servers.redis_url,
                  "pids": [servers.postgres_pid, servers.valkey_pid]}), flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Not under tmp_path: every new pytest session resets /tmp/pytest-of-<user> to mode 0700, and when we
    # run as root, PostgreSQL runs as another user that must be able to traverse the path.
    base = Path(tempfile.mkdtemp(prefix="bookworm-embedded-"))
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def holder(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """Run another process that owns the servers of data_dir; kill it afterwards."""
    command = [sys.executable, "-c", HOLDER, str(data_dir)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        assert process.stdout is not None
        info: dict[str, Any] = {}
        try:
            line = process.stdout.readline()
            assert line, f"the holder process could not start the servers; see {data_dir}/*.log"
            info = json.loads(line)
            yield process, info
        finally:
            process.kill()
            process.wait()
            _wait_for(lambda: not any(map(_alive, info.get("pids", []))), "the holder's servers to stop")


def test_start_serves_and_keeps_data_across_restarts(data_dir: Path) -> None:
    servers = embedded.start(data_dir)
    try:
        assert servers.owned
        assert _sql(servers.database_url, "SELECT current_database()") == "bookworm"
        _sql(servers.database_url, "CREATE TABLE kept (value text)")
        _sql(servers.database_url, "INSERT INTO kept VALUES ('row')")
        with redis.Redis.from_url(servers.redis_url) as client:
            assert client.ping()
            client.set("kept", "key")
        children = [servers.postgres_pid, servers.valkey_pid]
    finally:
        servers.stop()
    servers.stop()  # idempotent
    assert not any(map(_alive, children))
    assert not (data_dir / "embedded.json").exists()

    servers = embedded.start(data_dir)
    try:
        assert _sql(servers.database_url, "SELECT value FROM kept") == "row"
        with redis.Redis.from_url(servers.redis_url) as client:
            assert client.get("kept") == b"key"
    finally:
        servers.stop()


def test_second_exclusive_start_names_the_owner(
    data_dir: Path, holder: tuple[subprocess.Popen[str], dict[str, Any]]
) -> None:
    process, _ = holder
    with pytest.raises(embedded.DataDirInUse, match=rf"already running on .*data \(pid {process.pid}\)"):
        embedded.start(data_dir)


def test_attach_or_start_returns_the_running_servers(
    data_dir: Path, holder: tuple[subprocess.Popen[str], dict[str, Any]]
) -> None:
    process, info = holder
    servers = embedded.attach_or_start(data_dir)
    assert (servers.database_url, servers.redis_url) == (info["database_url"], info["redis_url"])
    assert not servers.owned and servers.owner_pid == process.pid
    servers.stop()  # attached: leaves the owner's servers running
    assert _sql(servers.database_url, "SELECT 1") == 1
    with redis.Redis.from_url(servers.redis_url) as client:
        assert client.ping()


def test_children_die_when_the_owner_is_killed(
    data_dir: Path, holder: tuple[subprocess.Popen[str], dict[str, Any]]
) -> None:
    process, info = holder
    assert all(map(_alive, info["pids"]))
    process.kill()
    process.wait()
    _wait_for(lambda: not any(map(_alive, info["pids"])), "the servers to die with their owner")

    servers = embedded.start(data_dir)  # the stale embedded.json and postmaster.pid do not get in the way
    try:
        assert _sql(servers.database_url, "SELECT 1") == 1
    finally:
        servers.stop()


def _sql(url: str, query: str) -> Any:
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


def _alive(pid: int) -> bool:
    """Return whether pid runs; a zombie (exited, not yet reaped by init) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
