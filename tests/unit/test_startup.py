"""What `bookworm serve` prints once it listens: where to go, which servers, which processes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.settings import Settings
from app.startup import banner, redact

EMBEDDED = "postgresql://postgres:s3cret@/bookworm?host=/data/run"


def test_a_password_is_hidden_and_a_url_without_one_is_kept() -> None:
    assert (
        redact("postgresql://bookworm:s3cret@db:5432/bookworm")
        == "postgresql://bookworm:***@db:5432/bookworm"
    )
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"


def test_the_block_names_the_urls_the_servers_and_the_processes(tmp_path: Path) -> None:
    configured = replace(
        Settings(),
        host="0.0.0.0",
        port=8000,
        database_url=None,
        redis_url="redis://:s3cret@cache:6379/0",
        data_dir=tmp_path,
    )
    resolved = replace(configured, database_url=EMBEDDED)

    lines = banner(configured, resolved, api_processes=2, workers=True).splitlines()

    assert lines[:5] == [
        "Bookworm: http://127.0.0.1:8000",
        "  GraphiQL:   http://127.0.0.1:8000/graphql",
        f"  PostgreSQL: embedded (data in {tmp_path})",
        "  Redis:      redis://:***@cache:6379/0 (from BOOKWORM_REDIS_URL)",
        "  Processes:  2 API processes on 0.0.0.0:8000, 1 worker (relay, consumers, scheduler)",
    ]
    assert lines[5].startswith("Stop with Ctrl-C") and len(lines) == 6
    assert "s3cret" not in "\n".join(lines)


@pytest.mark.parametrize(("host", "shown"), [("::", "[::1]"), ("::1", "[::1]"), ("10.0.0.5", "10.0.0.5")])
def test_the_url_is_one_a_browser_on_this_machine_can_open(host: str, shown: str) -> None:
    settings = replace(Settings(), host=host, port=9000, graphiql=False, database_url="x", redis_url="y")

    text = banner(settings, settings, api_processes=1, workers=False)

    assert text.splitlines()[1] == f"  GraphQL:    http://{shown}:9000/graphql"
    assert "1 API process on" in text and "no worker (run `bookworm worker`)" in text
