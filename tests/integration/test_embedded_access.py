"""Embedded servers are closed to other local users: passwords, private files, sockets in a private dir."""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

from app import embedded
from tests.integration.embedded_support import scratch_data_dir, sql

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")

# What initdb --auth=trust wrote before the embedded servers had passwords.
TRUSTING_HBA = """\
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[embedded.EmbeddedServers]:
    with scratch_data_dir() as data_dir:
        started = embedded.start(data_dir)
        try:
            yield started
        finally:
            started.stop()


def test_both_servers_refuse_a_login_without_the_password(servers: embedded.EmbeddedServers) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        sql(_without_password(servers.database_url), "SELECT 1")
    with pytest.raises(asyncpg.InvalidPasswordError):
        sql(_with_password(servers.database_url, "guessed"), "SELECT 1")
    with redis.Redis.from_url(_without_password(servers.redis_url)) as client:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    with redis.Redis.from_url(_with_password(servers.redis_url, "guessed")) as client:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    # A bare client that does not even try to log in gets nothing either.
    with socket.socket(socket.AF_UNIX) as bare:
        bare.connect(_socket_path(servers.redis_url))
        bare.sendall(b"PING\r\n")
        assert bare.recv(64).startswith(b"-NOAUTH")


def test_with_the_password_both_servers_work_on_sockets_only(servers: embedded.EmbeddedServers) -> None:
    assert sql(servers.database_url, "SELECT current_user") == "postgres"
    assert sql(servers.database_url, "SHOW listen_addresses") == ""  # no TCP
    assert sql(servers.database_url, "SHOW password_encryption") == "scram-sha-256"
    verifier = sql(servers.database_url, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
    assert verifier.startswith("SCRAM-SHA-256$")
    hba = (servers.data_dir / "postgres" / "pg_hba.conf").read_text()
    assert "trust" not in _rules(hba) and "scram-sha-256" in _rules(hba)
    with redis.Redis.from_url(servers.redis_url) as client:
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}  # no TCP
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}


def test_credentials_and_sockets_are_private(servers: embedded.EmbeddedServers) -> None:
    data_dir = servers.data_dir
    # As root, PostgreSQL runs as a user of its own whose group may pass through the data directory.
    assert _mode(data_dir) == (0o710 if os.geteuid() == 0 else 0o700)
    assert _mode(data_dir / "run") == 0o700
    for name in ("credentials.json", "embedded.json", "valkey.conf", "postgres.log", "valkey.log"):
        assert _mode(data_dir / name) == 0o600, name
    passwords = json.loads((data_dir / "credentials.json").read_text())
    assert set(passwords) == {"postgres", "valkey"}
    assert passwords["postgres"] in servers.database_url and passwords["valkey"] in servers.redis_url
    for pid in (servers.postgres_pid, servers.valkey_pid):  # what `ps` shows
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert not any(password in command_line for password in passwords.values())
    assert not any(password in repr(servers) for password in passwords.values())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as another local user")
def test_another_local_user_reaches_neither_files_nor_sockets(servers: embedded.EmbeddedServers) -> None:
    data_dir = servers.data_dir
    targets = [
        data_dir / "credentials.json",
        data_dir / "embedded.json",
        data_dir / "valkey.conf",
        data_dir / "run" / ".s.PGSQL.5432",
        Path(_socket_path(servers.redis_url)),
    ]
    assert all(target.exists() for target in targets)
    assert _reachable_by(pwd.getpwnam("nobody").pw_uid, targets) == []


def test_a_data_dir_of_the_trusting_version_is_upgraded_in_place() -> None:
    with scratch_data_dir() as data_dir:
        servers = embedded.start(data_dir)
        try:
            sql(servers.database_url, "CREATE TABLE kept (value text)")
            sql(servers.database_url, "INSERT INTO kept VALUES ('row')")
            sql(servers.database_url, "ALTER ROLE postgres PASSWORD NULL")
            with redis.Redis.from_url(servers.redis_url) as client:
                client.set("kept", "key")
        finally:
            servers.stop()
        _make_it_look_trusting(data_dir)

        servers = embedded.start(data_dir)
        try:
            assert sql(servers.database_url, "SELECT value FROM kept") == "row"
            with redis.Redis.from_url(servers.redis_url) as client:
                assert client.get("kept") == b"key"
            with pytest.raises(asyncpg.InvalidPasswordError):
                sql(_without_password(servers.database_url), "SELECT 1")
            assert "trust" not in _rules((data_dir / "postgres" / "pg_hba.conf").read_text())
            assert _mode(data_dir / "credentials.json") == 0o600
            assert _mode(data_dir) in (0o700, 0o710)
        finally:
            servers.stop()

        servers = embedded.start(data_dir)  # and it stays that way
        try:
            assert sql(servers.database_url, "SELECT value FROM kept") == "row"
        finally:
            servers.stop()


def _make_it_look_trusting(data_dir: Path) -> None:
    """Turn a stopped data directory back into what the version without passwords left."""
    (data_dir / "postgres" / "pg_hba.conf").write_text(TRUSTING_HBA)  # keeps the file's owner
    for name in ("credentials.json", "valkey.conf"):
        (data_dir / name).unlink()
    data_dir.chmod(0o755)


def _reachable_by(uid: int, targets: list[Path]) -> list[str]:
    """Return which targets a process of user uid can open (files) or connect to (sockets)."""
    # A forked child needs no interpreter that user may run: it drops to uid and tries each target.
    reading, writing = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a threaded process; the child only makes system calls.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        try:
            os.close(reading)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(writing, json.dumps([str(target) for target in targets if _opens(target)]).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        reached = pipe.read()
    os.waitpid(child, 0)
    assert reached, "the child could not become the other user"
    result: list[str] = json.loads(reached)
    return result


def _opens(target: Path) -> bool:
    try:
        if target.is_socket():
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(target))
        else:
            target.open("rb").close()
    except OSError:
        return False
    return True


def _without_password(url: str) -> str:
    return _with_password(url, None)


def _with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    login = parts.username or ""
    if password is not None:
        login += f":{password}"
    return parts._replace(netloc=f"{login}@{parts.netloc.rpartition('@')[2]}").geturl()


def _socket_path(redis_url: str) -> str:
    return urlsplit(redis_url).path


def _rules(hba: str) -> list[str]:
    return [word for line in hba.splitlines() for word in line.split("#", 1)[0].split()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
