"""Fixtures of the fault scenarios: a profile (CI-sized, or `--soak`), clusters of real processes, private
servers that may be killed, and a summary of what each scenario measured, printed after the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.settings import Settings
from tests.conftest import new_database_settings
from tests.faults.cluster import Cluster, PrivatePostgres, PrivateValkey
from tests.measured import Measured

SCENARIOS = Measured("fault scenarios: what was measured")


@dataclass(frozen=True)
class Profile:
    """How hard and how long the scenarios push: small enough for CI by default, full with --soak."""

    soak: bool
    rate: float  # mutations per second of the steady load
    clients: int  # concurrent HTTP clients sending it (each waits for its answer)
    seconds: float  # how long the load of one scenario lasts
    kills: int  # how many times scenario 1 kills the worker
    slow_seconds: float  # how long the slow subscriber reads nothing
    slow_changes: int  # how many changes flow meanwhile


CI = Profile(soak=False, rate=100, clients=16, seconds=8, kills=3, slow_seconds=10, slow_changes=2_000)
SOAK = Profile(soak=True, rate=200, clients=48, seconds=30, kills=8, slow_seconds=30, slow_changes=10_000)


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    return SOAK if request.config.getoption("--soak") else CI


record = SCENARIOS.record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    SCENARIOS.report(terminalreporter)


@pytest.fixture
def cluster(make_settings: Callable[[], Settings], tmp_path: Path) -> Iterator[Cluster]:
    """Processes on the test run's servers (the machine's or the embedded ones), with a new database."""
    running = Cluster(make_settings(), tmp_path)
    yield running
    running.stop()


@pytest.fixture
def valkey() -> Iterator[PrivateValkey]:
    server = PrivateValkey()
    yield server
    server.close()


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.close()


@pytest.fixture
def private_cluster(postgres: PrivatePostgres, valkey: PrivateValkey, tmp_path: Path) -> Iterator[Cluster]:
    """Processes on servers of this test's own, which it may kill and restart."""
    # No clean-up of the database: the whole cluster goes with the test's temporary directory.
    running = Cluster(new_database_settings(postgres.url, valkey.url), tmp_path)
    yield running
    running.stop()
