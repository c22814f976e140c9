"""Every client has a budget, shared by every API process: a burst past it is refused with 429, and
every answer says what it cost and what is left."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.settings import Settings
from tests.abuse.conftest import Shop, record
from tests.abuse.harness import BOOK_BY_ID, Bystander, client, codes, new_address
from tests.e2e.clients import bearer
from tests.faults.cluster import admin_token

pytestmark = pytest.mark.usefixtures("unharmed")
DEFAULTS = Settings()


async def test_a_burst_of_two_thousand_requests_is_rate_limited(shop: Shop) -> None:
    body = {"query": BOOK_BY_ID, "variables": {"id": shop.book_id}}
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

        await asyncio.gather(*(send(125) for _ in range(16)))  # 16 connections at once, as a script would
    record(
        "2,000-request burst, one client",
        statuses=dict(statuses),
        retry_after=sorted(retry_after),
        bystander=bystander.summary(),
    )
    assert statuses[429] > 0 and statuses[200] >= DEFAULTS.budget_capacity * 0.9
    assert set(statuses) == {200, 429}
    assert all(value.isdigit() and int(value) >= 1 for value in retry_after)
    bystander.assert_served()


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
    async with client(shop.url, new_address(), **bearer(admin_token())) as http:
        for n in range(DEFAULTS.write_budget_capacity + 10):
            response = await http.post("/graphql", json={"query": create, "variables": {"n": f"Burst {n}"}})
            statuses[response.status_code] += 1
        # Reads still pass: the write budget is spent, not the cost budget.
        read = await http.post("/graphql", json={"query": BOOK_BY_ID, "variables": {"id": shop.book_id}})
    assert statuses[429] >= 5, statuses
    assert read.status_code == 200
    record("60 createAuthor from one admin", statuses=dict(statuses))


async def test_a_bookworm_position_wait_is_charged_before_it_waits(shop: Shop) -> None:
    position = f"{1:032x}"  # long passed: each request waits for nothing, but still pays for the wait
    body = {"query": "{ __typename }"}
    statuses: Counter[int] = Counter()
    async with client(shop.url, new_address(), **{"bookworm-position": position}) as http:
        for _ in range(DEFAULTS.budget_capacity // DEFAULTS.position_wait_cost + 20):
            response = await http.post("/graphql", json=body)
            statuses[response.status_code] += 1
            if response.status_code == 429:
                assert codes(response.json()) == {"RATE_LIMITED"}
    record("Bookworm-Position waits from one client", statuses=dict(statuses))
    assert statuses[429] >= 10, statuses
    assert statuses[200] < DEFAULTS.budget_capacity // DEFAULTS.position_wait_cost + 10
