"""Order mails over real HTTP and SMTP: the customer's mail arrives at a local SMTP server.

The server runs with BOOKWORM_SMTP_HOST/PORT pointing at the `mailbox` fixture (aiosmtpd). Each test's
customer has a fresh subject and address, so mails of other e2e modules never match.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.identity.tokens import issue
from tests.e2e.clients import WAIT, bearer, gql
from tests.e2e.conftest import JWT_SECRET, MakeToken
from tests.e2e.mailbox import Mail, Mailbox
from tests.e2e.operations import ERRORS, create_book

pytestmark = pytest.mark.e2e

ADDRESS = {"street": "12 Rue des Lilas", "city": "Montreal", "province": "QC"}
UPDATE_ADDRESS = f"""
mutation($input: UpdateBuyerAddressInput!) {{
  updateBuyerAddress(input: $input) {{ __typename {ERRORS} }} }}"""
ADD_ITEM = f"""
mutation($bookId: ID!) {{
  addBasketItem(input: {{bookId: $bookId, quantity: 2}}) {{ __typename {ERRORS} }} }}"""
PLACE_ORDER = f"""
mutation {{ placeOrder(input: {{note: "Ring twice"}}) {{
  __typename ... on PlaceOrderSuccess {{ orderId }} {ERRORS} }} }}"""
COMPLETE_ORDER = f"""
mutation($id: ID!) {{ completeOrder(input: {{orderId: $id}}) {{ __typename {ERRORS} }} }}"""
CANCEL_ORDER = f"""
mutation($id: ID!) {{ cancelOrder(input: {{orderId: $id}}) {{ __typename {ERRORS} }} }}"""
NOTIFICATIONS = """
query($orderId: ID, $status: NotificationStatus) {
  notifications(orderId: $orderId, status: $status) {
    totalCount
    edges { cursor node { id orderId kind recipient subject status attempts lastError createdAt sentAt } }
  } }"""


@dataclass
class Shopper:
    http: httpx.AsyncClient
    email: str

    async def mutate(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        data = await gql(self.http, document, variables)
        (result,) = data.values()
        assert not result["__typename"].endswith(("Failed", "NotFound", "Conflict", "Forbidden")), result
        return dict(result)

    async def place_order(self, book_id: str) -> str:
        await self.mutate(ADD_ITEM, {"bookId": book_id})
        placed = await self.mutate(PLACE_ORDER)
        return str(placed["orderId"])


@pytest.fixture
async def shopper(server: str, make_token: MakeToken) -> AsyncIterator[Shopper]:
    """A customer of this test alone, with a delivery address and an address of their own."""
    subject = f"alice-{uuid.uuid4().hex[:8]}"
    email = f"{subject}@example.com"
    token = make_token(subject, name="Alice", email=email)
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        shopper = Shopper(client, email)
        await shopper.mutate(UPDATE_ADDRESS, {"input": ADDRESS})
        yield shopper


@pytest.fixture(scope="module")
async def book_id(http: httpx.AsyncClient, refs: dict[str, Any]) -> str:
    created = await create_book(
        http, refs, name="The Word for World Is Forest", price="11.00", priceSale=None
    )
    return str(created["bookId"])


def about(order_id: str, what: str) -> Any:
    def match(mail: Mail) -> bool:
        return mail.subject.startswith(f"Bookworm order {what}") and order_id in mail.text

    return match


async def test_the_customer_is_mailed_when_the_order_is_received_and_completed(
    shopper: Shopper, book_id: str, mailbox: Mailbox, http: httpx.AsyncClient
) -> None:
    order_id = await shopper.place_order(book_id)

    received = await mailbox.wait_for(about(order_id, "received"))
    assert received.recipients == (shopper.email,)
    assert received.message["To"] == shopper.email
    assert "Hello Alice," in received.text
    assert "2 x The Word for World Is Forest at 11.00 = 22.00" in received.text
    assert "Total: 22.00" in received.text
    assert "Your note: Ring twice" in received.text

    done = (await gql(http, COMPLETE_ORDER, {"id": order_id}))["completeOrder"]
    assert done["__typename"] == "CompleteOrderSuccess", done
    completed = await mailbox.wait_for(about(order_id, "completed"))
    assert completed.recipients == (shopper.email,)


async def test_the_customer_is_mailed_when_they_cancel(
    shopper: Shopper, book_id: str, mailbox: Mailbox
) -> None:
    order_id = await shopper.place_order(book_id)
    await shopper.mutate(CANCEL_ORDER, {"id": order_id})
    cancelled = await mailbox.wait_for(about(order_id, "cancelled"))
    assert cancelled.recipients == (shopper.email,)


async def test_admins_list_the_mails_of_an_order(
    shopper: Shopper, book_id: str, mailbox: Mailbox, http: httpx.AsyncClient
) -> None:
    order_id = await shopper.place_order(book_id)
    await mailbox.wait_for(about(order_id, "received"))

    # The row is marked SENT just after the server accepted the mail: poll the listing, bounded.
    async with asyncio.timeout(WAIT):
        while True:
            page = (await gql(http, NOTIFICATIONS, {"orderId": order_id, "status": "SENT"}))["notifications"]
            if page["totalCount"] == 1:
                break
            await asyncio.sleep(0.05)
    (edge,) = page["edges"]
    node = edge["node"]
    assert node["orderId"] == order_id
    assert (node["kind"], node["recipient"], node["status"], node["attempts"]) == (
        "ORDER_RECEIVED",
        shopper.email,
        "SENT",
        1,
    )
    assert node["lastError"] is None and node["sentAt"] is not None


async def test_an_address_the_identity_provider_did_not_verify_gets_no_mail(
    server: str, book_id: str, mailbox: Mailbox, http: httpx.AsyncClient, shopper: Shopper
) -> None:
    verified_shopper = shopper
    subject = f"mallory-{uuid.uuid4().hex[:8]}"
    email = f"stranger-{subject}@example.com"  # someone else's address, in a token that does not vouch for it
    token = issue(JWT_SECRET, subject=subject, name="Mallory", email=email, email_verified=False)
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        stranger = Shopper(client, email)
        await stranger.mutate(UPDATE_ADDRESS, {"input": ADDRESS})
        order_id = await stranger.place_order(book_id)
        await stranger.mutate(CANCEL_ORDER, {"id": order_id})

    async with asyncio.timeout(WAIT):
        while True:
            page = (await gql(http, NOTIFICATIONS, {"orderId": order_id}))["notifications"]
            if page["totalCount"] >= 1:
                break
            await asyncio.sleep(0.05)
    (edge,) = page["edges"]
    node = edge["node"]
    assert (node["kind"], node["status"], node["attempts"], node["sentAt"]) == (
        "ORDER_RECEIVED",
        "SKIPPED",
        0,
        None,
    )
    assert "not verified" in node["lastError"]
    # A verified customer's order placed after it is mailed; the stranger never was.
    later = await verified_shopper.place_order(book_id)
    await mailbox.wait_for(about(later, "received"))
    assert mailbox.received(lambda mail: email in mail.recipients) == []


async def test_customers_may_not_list_mails(alice_http: httpx.AsyncClient) -> None:
    await assert_forbidden(alice_http)


async def test_anonymous_callers_may_not_list_mails(anon_http: httpx.AsyncClient) -> None:
    await assert_forbidden(anon_http)


async def assert_forbidden(caller: httpx.AsyncClient) -> None:
    response = await caller.post("/graphql", json={"query": NOTIFICATIONS})
    body = response.json()
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_a_bad_order_id_is_a_validation_error(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": NOTIFICATIONS, "variables": {"orderId": "nope"}})
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED"
    assert error["extensions"]["fields"][0]["field"] == "orderId"
