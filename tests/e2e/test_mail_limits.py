"""Mail limits over real HTTP, on a server of their own: an hourly cap per customer, and a log without bodies.

The server has no SMTP host, so each mail is "sent" by writing it to the log at the default level (INFO).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.e2e.clients import WAIT, bearer, gql
from tests.e2e.conftest import CREATE_AUTHOR, CREATE_CATEGORY, CREATE_PUBLISHER
from tests.e2e.operations import create_book
from tests.e2e.test_mail import NOTIFICATIONS, PLACE_ORDER, UPDATE_ADDRESS, Shopper
from tests.faults.cluster import Cluster, Proc, admin_token, customer_token

pytestmark = pytest.mark.e2e

LIMIT = 2
MY_BASKET = "{ myBasket { items { bookId } } }"
ADD_ONE = """mutation($bookId: ID!) { addBasketItem(input: {bookId: $bookId, quantity: 1}) { __typename } }"""


@pytest.fixture(scope="module")
def capped(make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("mail-limits"))
    try:
        yield cluster.api(
            "capped",
            workers=True,
            BOOKWORM_LOG_LEVEL="INFO",
            BOOKWORM_MAX_MAILS_PER_CUSTOMER_PER_HOUR=str(LIMIT),
        )
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
async def admin(capped: Proc) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=capped.url, timeout=30, headers=bearer(admin_token())) as client:
        yield client


async def a_book(admin: httpx.AsyncClient) -> str:
    author = (await gql(admin, CREATE_AUTHOR, {"name": "N. K. Jemisin"}))["createAuthor"]
    category = (await gql(admin, CREATE_CATEGORY, {"name": "Fantasy"}))["createCategory"]
    publisher = (await gql(admin, CREATE_PUBLISHER, {"name": "Orbit"}))["createPublisher"]
    refs: dict[str, Any] = {
        "authorId": author["authorId"],
        "categoryId": category["categoryId"],
        "publisherId": publisher["publisherId"],
    }
    created = await create_book(admin, refs, name="The Fifth Season", price="12.00", priceSale=None)
    return str(created["bookId"])


async def emptied(client: httpx.AsyncClient) -> None:
    """Wait until the caller's basket is empty (its checkout went through)."""
    async with asyncio.timeout(WAIT):
        while True:
            basket = (await gql(client, MY_BASKET))["myBasket"]
            if not basket or not basket["items"]:
                return
            await asyncio.sleep(0.05)


async def mails_of(admin: httpx.AsyncClient, orders: list[str], settled: int) -> list[dict[str, Any]]:
    """Wait until the orders have at least `settled` mails, all SENT or SKIPPED; return them."""
    async with asyncio.timeout(WAIT):
        while True:
            nodes = []
            for order in orders:
                page = (await gql(admin, NOTIFICATIONS, {"orderId": order}))["notifications"]
                nodes += [edge["node"] for edge in page["edges"]]
            if len(nodes) >= settled and all(node["status"] in ("SENT", "SKIPPED") for node in nodes):
                return nodes
            await asyncio.sleep(0.1)


async def test_mails_past_the_hourly_limit_are_skipped_and_bodies_stay_out_of_the_log(
    capped: Proc, admin: httpx.AsyncClient
) -> None:
    book_id = await a_book(admin)
    subject = f"carol-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(
        base_url=capped.url, timeout=30, headers=bearer(customer_token(subject))
    ) as client:
        shopper = Shopper(client, f"{subject}@example.com")
        await shopper.mutate(
            UPDATE_ADDRESS, {"input": {"street": "3 Elm St", "city": "Halifax", "province": "NS"}}
        )
        orders = []
        for _ in range(LIMIT + 1):
            await shopper.mutate(ADD_ONE, {"bookId": book_id})
            orders.append(str((await shopper.mutate(PLACE_ORDER))["orderId"]))
            await emptied(client)  # checked out: the next item goes into the next order's basket

    # Each order's "received" mail, and its "cancelled" or "completed" one when the checkout settles.
    nodes = await mails_of(admin, orders, LIMIT + 1)
    assert sum(node["status"] == "SENT" for node in nodes) == LIMIT, nodes
    skipped = [node for node in nodes if node["status"] == "SKIPPED"]
    assert skipped and all("limit" in node["lastError"] and node["sentAt"] is None for node in skipped)
    last_received = next(node for node in nodes if node["orderId"] == orders[-1])
    assert last_received["status"] == "SKIPPED"

    log = capped.log.read_text(errors="replace")
    assert log.count(f"mail to {shopper.email}: Bookworm order") == LIMIT
    assert log.count("mails this hour; skipping more") == 1
    assert "Ring twice" not in log  # the customer's note, in every body
    assert "Hello Carol" not in log and "Total: 12.00" not in log
