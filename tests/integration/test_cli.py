"""The `bookworm` command line, run as real subprocesses against a fresh test database and Redis prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from asyncio.subprocess import PIPE, Process
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from app.identity import Principal
from app.identity.keys import SECRET_FILE, TokenKeys
from app.identity.tokens import verify
from app.projections import PROJECTIONS
from app.seed import plan as seed_plan
from app.settings import Settings
from tests.conftest import ROOT

SEED_BOOKS = 30
SEED_COMMANDS = len(seed_plan(SEED_BOOKS))  # catalog, customers, baskets, orders, reviews
TIMEOUT = 120.0
POLL_LIMIT = 20.0
STOP_LIMIT = 30.0  # seconds a worker may take to stop after SIGTERM


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


def _env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKWORM_")}
    assert settings.database_url and settings.redis_url
    env |= {
        "BOOKWORM_DATABASE_URL": settings.database_url,
        "BOOKWORM_REDIS_URL": settings.redis_url,
        "BOOKWORM_REDIS_PREFIX": settings.redis_prefix,
        "BOOKWORM_LEASE_TTL": str(settings.lease_ttl),
        "BOOKWORM_RELAY_POLL_INTERVAL": str(settings.relay_poll_interval),
        "BOOKWORM_LOG_LEVEL": "WARNING",
    }
    return env | overrides


async def _spawn(env: dict[str, str], *args: str) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args, stdout=PIPE, stderr=PIPE, env=env, cwd=ROOT
    )


async def bookworm(settings: Settings, *args: str, **env: str) -> Run:
    process = await _spawn(_env(settings, **env), *args)
    stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def assert_one_line_error(run: Run, *words: str) -> None:
    assert run.status != 0, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def cli_settings(make_settings: Callable[[], Settings]) -> Iterator[Settings]:
    """A database of its own: the seed must not show up in other tests' catalogs."""
    yield make_settings()


@pytest.fixture(scope="module")
async def conn(cli_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    assert cli_settings.database_url
    connection = await asyncpg.connect(cli_settings.database_url)
    yield connection
    await connection.close()


async def _event_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM eventstore.events")
    return count


@pytest.fixture(scope="module")
async def first_seed(cli_settings: Settings, conn: asyncpg.Connection) -> int:
    """Seed once; return how many events the first run wrote."""
    run = await bookworm(cli_settings, "seed", "--books", str(SEED_BOOKS))
    assert run.status == 0, run
    assert f"{SEED_BOOKS} books" in run.stdout
    assert "8 customers" in run.stdout and "5 orders" in run.stdout
    assert f"{SEED_COMMANDS} new" in run.stdout
    return await _event_count(conn)


async def test_migrate_is_idempotent(cli_settings: Settings) -> None:
    for _ in range(2):
        run = await bookworm(cli_settings, "migrate")
        assert run.status == 0, run
        assert "revision" in run.stdout


async def test_seed_again_changes_nothing(
    cli_settings: Settings, conn: asyncpg.Connection, first_seed: int
) -> None:
    assert first_seed >= SEED_COMMANDS

    run = await bookworm(cli_settings, "seed", "--books", str(SEED_BOOKS))

    assert run.status == 0, run
    assert f"0 new, {SEED_COMMANDS} already there" in run.stdout
    assert await _event_count(conn) == first_seed


async def test_events_list_pages_in_commit_order(cli_settings: Settings, first_seed: int) -> None:
    run = await bookworm(cli_settings, "events", "list", "--limit", "3")
    assert run.status == 0, run
    header, *rows = run.stdout.splitlines()
    assert header.split()[:4] == ["POSITION", "TYPE", "STREAM", "VERSION"]
    assert len(rows) == 3
    assert rows[0].split()[1] == "AuthorCreated"

    first_position, second = rows[0].split()[0], rows[1]
    after = await bookworm(cli_settings, "events", "list", "--after", first_position, "--limit", "1")
    assert after.status == 0, after
    assert after.stdout.splitlines()[1].split()[:4] == second.split()[:4]

    stream = rows[0].split()[2]
    one = await bookworm(cli_settings, "events", "list", "--stream", stream)
    assert one.status == 0, one
    assert [r.split()[2] for r in one.stdout.splitlines()[1:]] == [stream]


async def test_projections_status_lists_every_consumer_group(cli_settings: Settings) -> None:
    run = await bookworm(cli_settings, "projections", "status")

    assert run.status == 0, run
    header, *rows = run.stdout.splitlines()
    assert {"NAME", "GENERATION", "POSITION", "LAG"} <= set(header.split())
    names = {line.split()[0] for line in rows}
    assert {"relay", "catalog", "basket", "ordering", "rating"} <= names
    assert {"checkout-saga", "basket-checkout", "feedback-check", "notifications"} <= names


async def test_deadletters_list_runs_when_there_are_none(cli_settings: Settings) -> None:
    run = await bookworm(cli_settings, "deadletters", "list")

    assert run.status == 0, run
    assert run.stdout.splitlines()[0].split()[:2] == ["ID", "CONSUMER"]


async def test_worker_projects_the_seed_and_stops_on_sigterm(
    cli_settings: Settings, conn: asyncpg.Connection, first_seed: int
) -> None:
    process = await _spawn(_env(cli_settings), "worker")
    assert process.stdout is not None and process.stderr is not None
    # Drained all along: an undrained pipe could fill up and block the worker's logging.
    log = asyncio.create_task(process.stderr.read())
    try:
        banner = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        assert b"worker running" in banner
        await _until(lambda: _book_count(conn), SEED_BOOKS)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_LIMIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, (await log).decode()


async def _book_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM read.book_view")
    return count


async def _until(probe: Callable[[], Awaitable[int]], expected: int) -> None:
    """Poll probe() until it returns expected, or fail after POLL_LIMIT seconds."""
    deadline = asyncio.get_running_loop().time() + POLL_LIMIT
    value: int | None = None
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if value == expected:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"still {value!r} after {POLL_LIMIT} s, expected {expected!r}")


async def test_unknown_projection_is_one_line(cli_settings: Settings) -> None:
    run = await bookworm(cli_settings, "projections", "rebuild", "nosuch")

    assert_one_line_error(run, "nosuch", "catalog")


async def test_bad_position_is_one_line(cli_settings: Settings) -> None:
    run = await bookworm(cli_settings, "events", "list", "--after", "garbage")

    assert_one_line_error(run, "garbage")


async def test_unreachable_database_is_one_line(cli_settings: Settings) -> None:
    run = await bookworm(
        cli_settings, "migrate", BOOKWORM_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere"
    )

    assert_one_line_error(run, "PostgreSQL")


async def test_token_verifies_with_the_data_dir_secret(cli_settings: Settings, tmp_path: Path) -> None:
    run = await bookworm(
        cli_settings,
        *("token", "--sub", "alice", "--name", "Alice", "--email", "alice@example.com"),
        *("--role", "customer", "--role", "admin", "--ttl", "600"),
        BOOKWORM_DATA_DIR=str(tmp_path),
    )

    assert run.status == 0, run
    secret_file = tmp_path / SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    principal = verify(run.stdout.strip(), TokenKeys(secret=secret_file.read_text().strip()))
    assert principal == Principal(
        subject="alice",
        name="Alice",
        email="alice@example.com",
        email_verified=True,
        roles=frozenset({"customer", "admin"}),
        expires_at=principal.expires_at,
    )
    assert principal.expires_at == pytest.approx(time.time() + 600, abs=10)


async def test_token_may_leave_its_address_unverified(cli_settings: Settings, tmp_path: Path) -> None:
    args = ("token", "--sub", "eve", "--email", "eve@example.com", "--email-unverified")
    run = await bookworm(cli_settings, *args, BOOKWORM_DATA_DIR=str(tmp_path))

    assert run.status == 0, run
    principal = verify(run.stdout.strip(), TokenKeys(secret=(tmp_path / SECRET_FILE).read_text().strip()))
    assert (principal.email, principal.email_verified) == ("eve@example.com", False)


async def test_token_longer_than_the_maximum_lifetime_is_refused(
    cli_settings: Settings, tmp_path: Path
) -> None:
    run = await bookworm(
        cli_settings,
        *("token", "--sub", "alice", "--ttl", "700"),
        BOOKWORM_DATA_DIR=str(tmp_path),
        BOOKWORM_MAX_TOKEN_LIFETIME="600",
    )

    assert_one_line_error(run, "BOOKWORM_MAX_TOKEN_LIFETIME")


async def test_token_twice_uses_the_same_secret(cli_settings: Settings, tmp_path: Path) -> None:
    first = await bookworm(cli_settings, "token", "--sub", "bob", BOOKWORM_DATA_DIR=str(tmp_path))
    secret = (tmp_path / SECRET_FILE).read_text()
    second = await bookworm(cli_settings, "token", "--sub", "bob", BOOKWORM_DATA_DIR=str(tmp_path))

    assert (tmp_path / SECRET_FILE).read_text() == secret
    keys = TokenKeys(secret=secret.strip())
    for run in (first, second):
        principal = verify(run.stdout.strip(), keys)
        assert principal.subject == "bob" and principal.roles == {"customer"}


async def test_token_signs_with_the_configured_secret(cli_settings: Settings, tmp_path: Path) -> None:
    secret = "a-configured-secret-for-the-token-command"
    run = await bookworm(
        cli_settings,
        *("token", "--sub", "carol"),
        BOOKWORM_DATA_DIR=str(tmp_path),
        BOOKWORM_JWT_SECRET=secret,
        BOOKWORM_JWT_ISSUER="https://bookworm.example",
        BOOKWORM_JWT_AUDIENCE="bookworm",
    )

    keys = TokenKeys(secret=secret, issuer="https://bookworm.example", audience="bookworm")
    assert verify(run.stdout.strip(), keys).subject == "carol"
    assert not (tmp_path / SECRET_FILE).exists()


async def test_token_with_only_a_public_key_is_one_line(cli_settings: Settings, tmp_path: Path) -> None:
    run = await bookworm(
        cli_settings, "token", "--sub", "dave", BOOKWORM_JWT_PUBLIC_KEY=str(tmp_path / "idp.pem")
    )

    assert run.status == 1
    assert_one_line_error(run, "BOOKWORM_JWT_PUBLIC_KEY", "BOOKWORM_JWT_SECRET")


@pytest.mark.parametrize("args", [(), ("--sub", "eve", "--ttl", "soon")])
async def test_token_usage_errors_are_one_line(cli_settings: Settings, args: tuple[str, ...]) -> None:
    run = await bookworm(cli_settings, "token", *args)

    assert run.status == 2
    assert_one_line_error(run, "bookworm token")


@pytest.fixture(scope="module")
async def projected(cli_settings: Settings, first_seed: int) -> Run:
    """Run a worker until `verify --wait` sees every projection caught up; return that verify's run."""
    process = await _spawn(_env(cli_settings), "worker")
    try:
        return await bookworm(cli_settings, "verify", "--wait", "60")
    finally:
        process.terminate()
        await process.communicate()


async def test_verify_passes_when_read_models_match_a_replay(projected: Run) -> None:
    assert projected.status == 0, projected
    lines = projected.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == list(PROJECTIONS)
    for line in lines:
        assert ": ok (" in line and " 0 events replayed" not in line, line


async def test_verify_prints_each_difference_and_fails(
    cli_settings: Settings, conn: asyncpg.Connection, projected: Run
) -> None:
    assert projected.status == 0, projected
    first_book = "(SELECT id FROM read.book_view ORDER BY id LIMIT 1)"
    await conn.execute(f"UPDATE read.book_view SET name = 'Tampered' WHERE id = {first_book}")
    await conn.execute(
        "DELETE FROM read.feedback_view WHERE id = (SELECT id FROM read.feedback_view ORDER BY id LIMIT 1)"
    )
    try:
        run = await bookworm(cli_settings, "verify")

        assert run.status == 1
        assert_one_line_error(run, "read models differ", "catalog", "rating")
        assert "catalog: 2 differences" in run.stdout and "rating: 1 differences" in run.stdout
        assert "  books live only: (" in run.stdout and "Tampered" in run.stdout
        assert "  books replay only: (" in run.stdout
        assert "  feedbacks replay only: (" in run.stdout
        assert "basket: ok" in run.stdout and "ordering: ok" in run.stdout
        limited = await bookworm(cli_settings, "verify", "catalog", "--max-shown", "1")
        assert limited.status == 1
        assert limited.stdout.count("  books ") == 1 and "  books: 1 more" in limited.stdout
    finally:
        for name in ("catalog", "rating"):  # the repair: replay into new tables
            repaired = await bookworm(cli_settings, "projections", "rebuild", name)
            assert repaired.status == 0, repaired
    again = await bookworm(cli_settings, "verify", "catalog", "rating")
    assert again.status == 0, again
    assert again.stdout.count(": ok (") == 2


async def test_verify_wait_fails_while_projections_lag(make_settings: Callable[[], Settings]) -> None:
    lagging = make_settings()
    assert (await bookworm(lagging, "seed", "--books", "3")).status == 0

    waited = await bookworm(lagging, "verify", "--wait", "0.5")
    assert_one_line_error(waited, "still behind the event store", "catalog")
    # Without --wait it compares up to each checkpoint: nothing applied yet, nothing to differ.
    unwaited = await bookworm(lagging, "verify")
    assert unwaited.status == 0, unwaited
    assert unwaited.stdout.count("ok (0 events replayed") == len(PROJECTIONS)


async def test_verify_of_an_unknown_projection_is_one_line(cli_settings: Settings) -> None:
    run = await bookworm(cli_settings, "verify", "catalog", "nosuch")
    assert_one_line_error(run, "no projection named nosuch")
