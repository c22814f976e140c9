"""One real `bookworm serve` (one API process and a worker process, default limits) on a seeded catalog,
and the checks every attack ends with: the server is alive, its memory came back, no consumer lost a lease
and no child of `serve` was restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from app.settings import Settings
from tests.faults.cluster import Cluster, Proc
from tests.measured import Measured

MEMORY_SLACK_MIB = 50.0
SETTLE_SECONDS = 20.0
# Tighter than the defaults only where a default would make the run long; every limit an attack meets
# is the default one.
SHOP_ENV = {"BOOKWORM_CONNECTION_INIT_TIMEOUT": "3", "BOOKWORM_LOG_LEVEL": "INFO"}
LEASE_LOST = ("lost by", "renewal failed")
RESTARTED = "; restart in "  # the supervisor's line for a child of `serve` that exited


@dataclass
class Shop:
    cluster: Cluster
    api: Proc
    book_id: str

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def ws_url(self) -> str:
        return self.api.ws_url

    def log(self) -> str:
        return self.api.log.read_text(errors="replace")


@pytest.fixture(scope="session")
async def shop(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("abuse"), lift_budgets=False)
    try:
        seeded = await cluster.cli("seed", "--books", "100")
        assert seeded.status == 0, seeded.stderr
        api = cluster.api("shop", workers=True, **SHOP_ENV)
        await cluster.caught_up()
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            response = await http.post(
                "/graphql", json={"query": "{ books(first: 1) { edges { node { id } } } }"}
            )
        book_id = response.json()["data"]["books"]["edges"][0]["node"]["id"]
        yield Shop(cluster, api, book_id)
    finally:
        cluster.stop()


@pytest.fixture
async def unharmed(shop: Shop) -> AsyncIterator[None]:
    """After the test: the server is up, its memory is back within 50 MiB, and every lease held."""
    log_before = len(shop.log())
    rss_before = shop.api.rss_mib()
    yield
    assert shop.api.alive, shop.api.log_tail()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while shop.api.rss_mib() > rss_before + MEMORY_SLACK_MIB and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)  # polling another process's memory: there is no event to wait on
    rss_after = shop.api.rss_mib()
    assert rss_after <= rss_before + MEMORY_SLACK_MIB, f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    during = shop.log()[log_before:]
    assert not any(sign in during for sign in LEASE_LOST), during[-4000:]
    assert RESTARTED not in during, during[-4000:]
    assert "Traceback" not in during, during[-4000:]


ATTACKS = Measured("abuse: what each attack cost and what the bystander saw")
record = ATTACKS.record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ATTACKS.report(terminalreporter)
