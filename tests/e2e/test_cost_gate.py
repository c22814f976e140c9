"""Expensive operations take turns in each API process: past the wait they are refused with a typed 503,
while cheap operations are never held back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.settings import Settings
from tests.faults.cluster import Cluster, Proc

pytestmark = pytest.mark.e2e

# One expensive operation at a time, and next to no wait for a turn.
LIMITS = {"BOOKWORM_MAX_RUNNING_COST": "100", "BOOKWORM_HEAVY_QUERY_WAIT": "0.001"}
EXPENSIVE = "{ books(first: 100) { edges { node { id authors { name } } } } }"  # costs 100 x 8
CHEAP = "{ books(first: 5) { totalCount } }"


@pytest.fixture(scope="module")
def gated(make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("gated"))
    try:
        yield cluster.api("gated", **LIMITS)
    finally:
        cluster.stop()


async def post(url: str, address: str, query: str) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as http:
        return await http.post("/graphql", json={"query": query})


async def test_expensive_operations_past_their_wait_get_a_typed_503(gated: Proc) -> None:
    answers = await asyncio.gather(*(post(gated.url, f"127.0.2.{n}", EXPENSIVE) for n in range(1, 41)))
    statuses = Counter(response.status_code for response in answers)
    assert set(statuses) == {200, 503}, statuses
    for response in answers:
        if response.status_code == 503:
            body = response.json()
            assert body.get("data") is None
            assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVER_BUSY"]
            assert response.headers["retry-after"] == "1"
            assert "Traceback" not in response.text


async def test_cheap_operations_pass_while_expensive_ones_queue(gated: Proc) -> None:
    cheap = [post(gated.url, f"127.0.3.{n}", CHEAP) for n in range(1, 21)]
    expensive = [post(gated.url, f"127.0.4.{n}", EXPENSIVE) for n in range(1, 21)]
    answers = await asyncio.gather(*cheap, *expensive)
    assert all(response.status_code == 200 for response in answers[:20])
