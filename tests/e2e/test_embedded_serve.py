"""README command 1: `bookworm serve` with no servers configured runs on embedded PostgreSQL and Valkey.

With one URL configured, only the other server is embedded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from app.startup import redact
from tests.e2e.process import bookworm_command, free_port, wait_ready

CREATE_AUTHOR = """mutation { createAuthor(input: {name: "Octavia E. Butler"}) {
  __typename ... on CreateAuthorSuccess { authorId author { name } } } }"""


def _embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKWORM_")}
    return {**env, "BOOKWORM_DATA_DIR": str(data_dir)}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # mkdtemp, not tmp_path: the embedded PostgreSQL runs as its own user and needs to reach the folder.
    path = Path(tempfile.mkdtemp(prefix="bookworm-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [*bookworm_command(), "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_serve_runs_on_embedded_servers_and_owns_its_data_dir(data_dir: Path) -> None:
    port = free_port()
    env = _embedded_env(data_dir)
    log = data_dir.parent / f"{data_dir.name}.log"
    serve = _serve(env, port, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, serve, log)
        assert f"http://127.0.0.1:{port}/graphql" in log.read_text()

        # README: with no BOOKWORM_JWT_SECRET, `bookworm token` signs with the data dir's secret.
        token = subprocess.run(
            [*bookworm_command(), "token", "--sub", "admin", "--role", "admin"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        created = httpx.post(
            f"{base_url}/graphql",
            json={"query": CREATE_AUTHOR},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        payload = created["data"]["createAuthor"]
        assert payload["__typename"] == "CreateAuthorSuccess"
        assert payload["author"] == {"name": "Octavia E. Butler"}  # the in-process workers projected it

        second = subprocess.run(
            [*bookworm_command(), "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr and "Traceback" not in second.stderr

        status = subprocess.run(
            [*bookworm_command(), "projections", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert any(line.split()[:1] == ["catalog"] for line in status.stdout.splitlines())

        postgres_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert _gone(postgres_pid, within=15)
        # serve named the embedded servers, and no output shows the generated passwords.
        printed = log.read_text() + token + status.stdout + status.stderr + second.stderr
        assert "PostgreSQL: embedded (data in" in printed
        assert "Redis:      embedded Valkey (data in" in printed
        passwords = json.loads((data_dir / "credentials.json").read_text()).values()
        assert not any(password in printed for password in passwords)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def test_serve_with_only_a_database_url_embeds_only_valkey(
    data_dir: Path, make_settings: Callable[[], Settings]
) -> None:
    settings = make_settings()
    assert settings.database_url
    port = free_port()
    env = {
        **_embedded_env(data_dir),
        "BOOKWORM_DATABASE_URL": settings.database_url,
        "BOOKWORM_REDIS_PREFIX": settings.redis_prefix,
    }
    log = data_dir.parent / f"{data_dir.name}.log"
    serve = _serve(env, port, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", serve, log)
        printed = log.read_text()
        assert f"PostgreSQL: {redact(settings.database_url)} (from BOOKWORM_DATABASE_URL)" in printed
        assert "Redis:      embedded Valkey (data in" in printed
        assert "alembic" not in printed and "startup complete" not in printed
        info = json.loads((data_dir / "embedded.json").read_text())
        assert info["postgres_pid"] is None and info["database_url"] is None
        assert not (data_dir / "postgres").exists()  # never even initialised
        valkey_pid = info["valkey_pid"]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert _gone(valkey_pid, within=15)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def _gone(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
