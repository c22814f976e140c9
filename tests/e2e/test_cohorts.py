"""Cohorts over a real server: live subscribers of one document share a stream, a resume still replays."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from tests.e2e.clients import TRANSPORT_WS, Subscription, gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.e2e.operations import create_book

pytestmark = pytest.mark.e2e

MEMBERS = 25
CHANGES = 20
CATALOG_CHANGED = """subscription($after: String) {
  catalogChanged(after: $after) { kind position entity entityId } }"""


async def create_author(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    author: dict[str, Any] = (await gql(http, CREATE_AUTHOR, {"name": name}))["createAuthor"]
    return author


async def next_author(subscription: Subscription) -> tuple[str, str]:
    """The next author created, as (entity id, position), skipping every other change."""
    while True:
        change = (await subscription.next_data())["catalogChanged"]
        if change["entity"] == "Author" and change["kind"] == "CREATED":
            return change["entityId"], change["position"]


async def until_author(subscription: Subscription, author_id: str) -> None:
    while (await next_author(subscription))[0] != author_id:
        pass


async def test_live_members_share_and_a_resuming_one_gets_what_it_missed_first(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str
) -> None:
    start = await create_book(http, refs, name="Before the cohort")
    async with (
        Subscription(TRANSPORT_WS, ws_url, CATALOG_CHANGED) as first,
        Subscription(TRANSPORT_WS, ws_url, CATALOG_CHANGED) as second,
    ):
        # A change reaching both proves both are live; retried, as a subscription starts in the background.
        for attempt in range(20):
            warm = await create_author(http, f"Cohort warm-up {attempt}")
            try:
                await until_author(first, warm["authorId"])
                await until_author(second, warm["authorId"])
                break
            except TimeoutError:
                continue
        missed = await create_author(http, "Cohort missed")
        assert (
            await next_author(first) == await next_author(second) == (missed["authorId"], missed["position"])
        )

        variables = {"after": start["position"]}
        async with Subscription(TRANSPORT_WS, ws_url, CATALOG_CHANGED, variables) as resuming:
            replayed = []
            while not replayed or replayed[-1][0] != missed["authorId"]:
                replayed.append(await next_author(resuming))
            live = await create_author(http, "Cohort live")
            expected = (live["authorId"], live["position"])
            assert await next_author(resuming) == expected
            assert await next_author(first) == await next_author(second) == expected
    assert (missed["authorId"], missed["position"]) in replayed


async def test_many_members_of_one_cohort_each_receive_every_change_in_order(
    http: httpx.AsyncClient, ws_url: str
) -> None:
    # Written straight to each socket's transport (app/schema/wire.py): the server runs uvicorn's
    # websockets-sansio protocol.
    async with AsyncExitStack() as stack:
        members = [
            await stack.enter_async_context(Subscription(TRANSPORT_WS, ws_url, CATALOG_CHANGED))
            for _ in range(MEMBERS)
        ]
        for attempt in range(20):  # every member is live once a change reaches them all
            warm = await create_author(http, f"Cohort of many, warm-up {attempt}")
            try:
                for member in members:
                    await until_author(member, warm["authorId"])
                break
            except TimeoutError:
                continue
        created = [(await create_author(http, f"Cohort of many {n}")) for n in range(CHANGES)]
        expected = [(author["authorId"], author["position"]) for author in created]
        for member in members:
            assert [await next_author(member) for _ in expected] == expected
