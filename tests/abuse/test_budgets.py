"""Every client has a budget, shared by every API process: a burst past it is refused with 429 (and each
refusal counted in /metrics), and every answer says what it cost and what is left."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.abuse.conftest import Shop, record
from tests.abuse.harness import BOOK_BY_ID, Bystander, client, codes, new_address
from tests.e2e.clients import bearer
from tests.faults.cluster import admin_token

pytestmark = pytest.mark.usefixtures("unharmed")
DEFAULTS = Settings()


# Nine points a request (3 x (edges + node)): the burst asks for 18,000 points, far more than the
# budget refills however slow the machine, so the refusals cannot depend on how fast it runs.
BURST = "{ books(first: 3) { edges { node { id name } } } }"
BURST_COST = 9


async def budget_refusals(url: str) -> float:
    """What /metrics counts as refused by a budget of cost points, in every process of the shop."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        text = (await http.get("/metrics")).text
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    wanted = ("bookworm_refusals_total", {"reason": "budget_cost"})
    return sum(sample.value for sample in samples if (sample.name, sample.labels) == wanted)


async def test_a_burst_of_two_thousand_requests_is_rate_limited(shop: Shop) -> None:
    body = {"query": BURST}
    refused_before = await budget_refusals(shop.url)
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    async with Bystander(shop.url, shop.book_id) as bystander, client(shop.url, new_address()) as http:

        async def send(n: int) -> None:
            for _ in range(n):
                response = await http.post("/graphql", json=body)
                statuses[response.status_code] += 1
                if response.status_code == 429:
                    assert codes(response.json()) == {"RATE_LIMITED"}
                    retry_after.add(response.headers["retry-after"])
                else:
                    assert response.json()["extensions"]["cost"]["requestedQueryCost"] == BURST_COST

        started = time.monotonic()
        await asyncio.gather(*(send(125) for _ in range(16)))  # 16 connections at once, as a script would
        elapsed = time.monotonic() - started
    record(
        "2,000-request burst, one client",
        statuses=dict(statuses),
        seconds=round(elapsed, 1),
        retry_after=sorted(retry_after),
        bystander=bystander.summary(),
    )
    assert set(statuses) == {200, 429}
    # What the bucket holds plus what it refilled meanwhile, no more and (nearly) no less.
    most = (DEFAULTS.budget_capacity + DEFAULTS.budget_refill * elapsed) / BURST_COST
    assert DEFAULTS.budget_capacity / BURST_COST * 0.9 <= statuses[200] <= most + 1
    assert all(value.isdigit() and int(value) >= 1 for value in retry_after)
    bystander.assert_served()
    assert await budget_refusals(shop.url) - refused_before == statuses[429]  # each one counted, once


async def test_every_answer_reports_its_cost_and_what_is_left(shop: Shop) -> None:
    async with client(shop.url, new_address()) as http:
        first = (
            await http.post("/graphql", json={"query": "{ books(first: 10) { edges { node { id } } } }"})
        ).json()
        second = (
            await http.post("/graphql", json={"query": BOOK_BY_ID, "variables": {"id": shop.book_id}})
        ).json()
    cost, status = first["extensions"]["cost"], first["extensions"]["cost"]["throttleStatus"]
    assert cost["requestedQueryCost"] == 10 * 3  # 10 x (edges + node)
    assert status["maximumAvailable"] == DEFAULTS.budget_capacity
    assert status["restoreRate"] == DEFAULTS.budget_refill
    after = second["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    assert after < status["currentlyAvailable"] + 5


async def test_mutations_spend_a_smaller_budget_of_their_own(shop: Shop) -> None:
    create = "mutation($n: String!) { createAuthor(input: {name: $n}) { __typename } }"
    statuses: Counter[int] = Counter()
    capacity, refill = DEFAULTS.write_budget_capacity, DEFAULTS.write_budget_refill
    async with client(shop.url, new_address(), **bearer(admin_token())) as http:
        started = time.monotonic()
        # Until five are refused, however fast the machine refills: at most three budgets' worth.
        for n in range(capacity * 3):
            response = await http.post("/graphql", json={"query": create, "variables": {"n": f"Burst {n}"}})
            statuses[response.status_code] += 1
            if statuses[429] == 5:
                break
        elapsed = time.monotonic() - started
        # Reads still pass: the write budget is spent, not the cost budget.
        read = await http.post("/graphql", json={"query": BOOK_BY_ID, "variables": {"id": shop.book_id}})
    record("createAuthor from one admin until 5 refusals", statuses=dict(statuses), seconds=round(elapsed, 1))
    assert statuses[429] == 5, statuses
    assert capacity <= statuses[200] <= capacity + refill * elapsed + 1
    assert read.status_code == 200


async def test_a_bookworm_position_wait_is_charged_before_it_waits(shop: Shop) -> None:
    position = f"{1:032x}"  # long passed: each request waits for nothing, but still pays for the wait
    body = {"query": "{ __typename }"}
    statuses: Counter[int] = Counter()
    per_wait = DEFAULTS.position_wait_cost
    async with client(shop.url, new_address(), **{"bookworm-position": position}) as http:
        started = time.monotonic()
        for _ in range(DEFAULTS.budget_capacity // per_wait * 3):
            response = await http.post("/graphql", json=body)
            statuses[response.status_code] += 1
            if response.status_code == 429:
                assert codes(response.json()) == {"RATE_LIMITED"}
                if statuses[429] == 10:
                    break
        elapsed = time.monotonic() - started
    record("Bookworm-Position waits until 10 refusals", statuses=dict(statuses), seconds=round(elapsed, 1))
    assert statuses[429] == 10, statuses
    # Each answer pays for its wait as well as its query (at least 1 point).
    most = (DEFAULTS.budget_capacity + DEFAULTS.budget_refill * elapsed) / (per_wait + 1)
    assert statuses[200] <= most + 1


PADDING = "#" + "x" * 50_000 + "\n"  # one comment: 51 points of text before a cost of 1
SIZE_COST = 1 + len(PADDING + "{ __typename }") // 1_000
TOO_MANY_ALIASES = "{ " + " ".join(f"a{i}: __typename" for i in range(DEFAULTS.max_query_aliases + 1)) + " }"


@pytest.mark.parametrize("query", ["{ __typename }", TOO_MANY_ALIASES], ids=["answered", "refused"])
async def test_a_documents_text_is_paid_for_each_time_it_is_sent(shop: Shop, query: str) -> None:
    """A document parsed before (and kept parsed) still costs its size every time, refused or not."""
    body = {"query": PADDING + query}
    async with client(shop.url, new_address()) as http:
        available = []
        started = time.monotonic()
        for _ in range(3):
            answer = (await http.post("/graphql", json=body)).json()
            available.append(answer["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"])
        refilled = DEFAULTS.budget_refill * (time.monotonic() - started)
    spent = DEFAULTS.budget_capacity - available[-1]
    assert spent >= 3 * SIZE_COST - refilled - 1, (available, refilled)
