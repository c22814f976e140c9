"""Embedded PostgreSQL and Valkey: start, persistence, exclusive ownership, attach, death with the parent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from app import embedded
from app.settings import Settings
from tests.integration.embedded_support import alive, scratch_data_dir, sql, wait_for

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
    with scratch_data_dir() as path:
        yield path


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
            wait_for(lambda: not any(map(alive, info.get("pids", []))), "the holder's servers to stop")


def test_start_serves_and_keeps_data_across_restarts(data_dir: Path) -> None:
    servers = embedded.start(data_dir)
    try:
        assert servers.owned
        assert sql(servers.database_url, "SELECT current_database()") == "bookworm"
        sql(servers.database_url, "CREATE TABLE kept (value text)")
        sql(servers.database_url, "INSERT INTO kept VALUES ('row')")
        with redis.Redis.from_url(servers.redis_url) as client:
            assert client.ping()
            client.set("kept", "key")
        children = [servers.postgres_pid, servers.valkey_pid]
    finally:
        servers.stop()
    servers.stop()  # idempotent
    assert not any(map(alive, children))
    assert not (data_dir / "embedded.json").exists()

    servers = embedded.start(data_dir)
    try:
        assert sql(servers.database_url, "SELECT value FROM kept") == "row"
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
    assert sql(servers.database_url, "SELECT 1") == 1
    with redis.Redis.from_url(servers.redis_url) as client:
        assert client.ping()


def test_children_die_when_the_owner_is_killed(
    data_dir: Path, holder: tuple[subprocess.Popen[str], dict[str, Any]]
) -> None:
    process, info = holder
    assert all(map(alive, info["pids"]))
    process.kill()
    process.wait()
    wait_for(lambda: not any(map(alive, info["pids"])), "the servers to die with their owner")

    servers = embedded.start(data_dir)  # the stale embedded.json and postmaster.pid do not get in the way
    try:
        assert sql(servers.database_url, "SELECT 1") == 1
    finally:
        servers.stop()


def test_with_both_urls_configured_nothing_is_embedded(tmp_path: Path) -> None:
    settings = replace(
        Settings.from_env({}),
        data_dir=tmp_path / "data",
        database_url="postgresql://db/x",
        redis_url="redis://r",
    )
    assert embedded.resolve(settings, exclusive=True) == (settings, None)
    assert not (tmp_path / "data").exists()


def test_only_the_server_whose_url_is_not_configured_is_embedded() -> None:
    with scratch_data_dir() as data_dir:
        configured = "redis://127.0.0.1:1/0"  # resolve never connects to it
        settings = replace(Settings.from_env({}), data_dir=data_dir, redis_url=configured)
        resolved, servers = embedded.resolve(settings, exclusive=True)
        assert servers is not None
        try:
            assert resolved.redis_url == configured and resolved.database_url == servers.database_url
            assert sql(servers.database_url, "SELECT current_database()") == "bookworm"
            assert servers.valkey_pid is None and servers.redis_url is None
            assert not (data_dir / "valkey").exists()
            # A command of the same data dir that needs Valkey too is told what to set.
            with pytest.raises(embedded.EmbeddedError, match=r"run no Valkey .*BOOKWORM_REDIS_URL"):
                embedded.attach_or_start(data_dir)
            # One that needs PostgreSQL alone attaches.
            attached = embedded.attach_or_start(data_dir, embedded.Wanted(valkey=False))
            assert attached.database_url == servers.database_url and not attached.owned
        finally:
            servers.stop()
