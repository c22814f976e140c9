"""How `bookworm` commands start, run as real subprocesses: a server or port that cannot be had is one line.

Each failure is one line on standard error, a non-zero exit, nothing on standard output (no URL, no
start-up block) and no traceback; INFO is on, so no log line may come before it either.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.integration.test_cli import Run, assert_one_line_error, bookworm

CLOSED = "127.0.0.1:1"  # nothing listens on port 1
COMMANDS = [("serve", "--port", "0", "--processes", "1"), ("worker",), ("seed", "--books", "3")]


@pytest.fixture(scope="module")
def startup_settings(make_settings: Callable[[], Settings]) -> Settings:
    return make_settings()


async def _run(settings: Settings, data_dir: Path, *args: str, **env: str) -> Run:
    return await bookworm(settings, *args, BOOKWORM_DATA_DIR=str(data_dir), BOOKWORM_LOG_LEVEL="INFO", **env)


def assert_failed_before_starting(run: Run, *words: str) -> None:
    assert_one_line_error(run, *words)
    assert run.stdout == "", run.stdout


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


async def test_serve_on_a_port_in_use_fails_before_printing_anything(
    startup_settings: Settings, tmp_path: Path, port_in_use: int
) -> None:
    run = await _run(startup_settings, tmp_path, "serve", "--port", str(port_in_use), "--processes", "1")

    assert_failed_before_starting(run, f"cannot listen on 127.0.0.1:{port_in_use}", "in use")
    assert "startup complete" not in run.stderr and "/graphql" not in run.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
async def test_an_unreachable_redis_is_one_line(
    startup_settings: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    run = await _run(startup_settings, tmp_path, *args, BOOKWORM_REDIS_URL=f"redis://:hush@{CLOSED}/0")

    assert_failed_before_starting(run, "cannot connect to Redis at redis://:***@127.0.0.1:1/0")
    assert "hush" not in run.stderr


@pytest.mark.parametrize("args", [*COMMANDS, ("migrate",), ("projections", "status")], ids=lambda a: a[0])
async def test_an_unreachable_postgresql_is_one_line(
    startup_settings: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    url = f"postgresql://bookworm:hush@{CLOSED}/bookworm"
    run = await _run(startup_settings, tmp_path, *args, BOOKWORM_DATABASE_URL=url)

    assert_failed_before_starting(run, "PostgreSQL at postgresql://bookworm:***@127.0.0.1:1/bookworm")
    assert "hush" not in run.stderr


async def test_migrate_needs_no_redis(startup_settings: Settings, tmp_path: Path) -> None:
    run = await _run(startup_settings, tmp_path, "migrate", BOOKWORM_REDIS_URL=f"redis://{CLOSED}/0")

    assert run.status == 0, run
    assert run.stderr == ""


async def test_seed_prints_no_alembic_lines(startup_settings: Settings, tmp_path: Path) -> None:
    run = await _run(startup_settings, tmp_path, "seed", "--books", "3")

    assert run.status == 0, run
    assert "alembic" not in run.stderr, run.stderr
    assert run.stdout.startswith("Seeded ")


async def test_json_logs_are_one_object_per_line(startup_settings: Settings, tmp_path: Path) -> None:
    json_logs = {"BOOKWORM_LOG_FORMAT": "json", "BOOKWORM_LOG_LEVEL": "DEBUG"}
    json_logs["BOOKWORM_DATA_DIR"] = str(tmp_path)
    run = await bookworm(startup_settings, "seed", "--books", "3", **json_logs)

    assert run.status == 0, run
    entries = [json.loads(line) for line in run.stderr.splitlines()]
    assert entries, "DEBUG logs something while seeding"
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)


async def test_an_unknown_log_format_is_one_line(startup_settings: Settings, tmp_path: Path) -> None:
    run = await _run(startup_settings, tmp_path, "seed", BOOKWORM_LOG_FORMAT="xml")

    assert_one_line_error(run, "BOOKWORM_LOG_FORMAT")
