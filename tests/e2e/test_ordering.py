"""Ordering over real HTTP and websockets: addresses, orders, who may see and change what, live changes.

Alice and Bob are customers of their own (fresh subjects, so other e2e modules' baskets never mix in);
`http` is the admin.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.ids import customer_id_of
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, WAIT, Subscription, bearer, gql
from tests.e2e.conftest import MakeToken
from tests.e2e.operations import ERRORS, create_book

pytestmark = pytest.mark.e2e

ORDER_FIELDS = """id status total note version createdAt updatedAt
  buyer { id name email address { street city province } }
  items { bookId name quantity unitPrice lineTotal }"""
ME = "{ me { id name email address { street city province } } }"
UPDATE_ADDRESS = f"""
mutation($input: UpdateBuyerAddressInput!) {{ updateBuyerAddress(input: $input) {{
  __typename
  ... on UpdateBuyerAddressSuccess {{
    buyerId position buyer {{ id name address {{ street city province }} }} }}
  {ERRORS}
}} }}"""
PLACE_ORDER = f"""
mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  __typename
  ... on PlaceOrderSuccess {{ orderId position order {{ {ORDER_FIELDS} }} }}
  {ERRORS}
}} }}"""
COMPLETE_ORDER = f"""
mutation($id: ID!) {{ completeOrder(input: {{orderId: $id}}) {{
  __typename
  ... on CompleteOrderSuccess {{ orderId position order {{ status version }} }}
  {ERRORS}
}} }}"""
CANCEL_ORDER = f"""
mutation($id: ID!) {{ cancelOrder(input: {{orderId: $id}}) {{
  __typename
  ... on CancelOrderSuccess {{ orderId position order {{ status version }} }}
  {ERRORS}
}} }}"""
ORDER = f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"
ORDERS = """query($status: OrderStatus, $buyerId: ID, $first: Int, $after: String) {
  orders(status: $status, buyerId: $buyerId, first: $first, after: $after) {
    totalCount edges { cursor node { id status buyer { id } } } pageInfo { hasNextPage endCursor } } }"""
ADD_ITEM = f"""
mutation($bookId: ID!, $quantity: Int!) {{ addBasketItem(input: {{bookId: $bookId, quantity: $quantity}}) {{
  __typename {ERRORS} }} }}"""
MY_BASKET = "{ myBasket { items { bookId quantity } } }"
ORDER_CHANGED = """subscription($id: ID!, $after: String) {
  orderChanged(id: $id, after: $after) { kind position orderId order { id status version } } }"""
MY_ORDERS_CHANGED = """subscription($after: String) {
  myOrdersChanged(after: $after) { kind position orderId order { id status } } }"""
ADDRESS = {"street": "12 Rue des Lilas", "city": "Montreal", "province": "QC"}


@dataclass
class Customer:
    http: httpx.AsyncClient
    token: str
    buyer_id: str

    async def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return await gql(self.http, document, variables)

    async def mutate(self, document: str, variables: dict[str, Any], name: str) -> dict[str, Any]:
        result: dict[str, Any] = (await gql(self.http, document, variables))[name]
        return result


@pytest.fixture(scope="module")
async def customers(server: str, make_token: MakeToken) -> AsyncIterator[dict[str, Customer]]:
    made: dict[str, Customer] = {}
    async with (
        httpx.AsyncClient(base_url=server, timeout=30) as alice,
        httpx.AsyncClient(base_url=server, timeout=30) as bob,
        httpx.AsyncClient(base_url=server, timeout=30) as carol,
    ):
        for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            subject = f"{name}-{uuid.uuid4().hex[:8]}"
            token = make_token(subject, name=name.title(), email=f"{name}@example.com")
            client.headers.update(bearer(token))
            made[name] = Customer(client, token, customer_id_of(subject))
        yield made


@pytest.fixture(scope="module")
async def alice(customers: dict[str, Customer]) -> Customer:
    customer = customers["alice"]
    done = await customer.mutate(UPDATE_ADDRESS, {"input": ADDRESS}, "updateBuyerAddress")
    assert done["__typename"] == "UpdateBuyerAddressSuccess", done
    return customer


@pytest.fixture(scope="module")
async def bob(customers: dict[str, Customer]) -> Customer:
    customer = customers["bob"]
    done = await customer.mutate(UPDATE_ADDRESS, {"input": ADDRESS}, "updateBuyerAddress")
    assert done["__typename"] == "UpdateBuyerAddressSuccess", done
    return customer


@pytest.fixture(scope="module")
async def book(http: httpx.AsyncClient, refs: dict[str, Any]) -> dict[str, Any]:
    created = await create_book(http, refs, name="The Dispossessed", price="14.00", priceSale=None)
    return created


async def basket_items(customer: Customer) -> list[dict[str, Any]]:
    basket = (await customer.query(MY_BASKET))["myBasket"]
    return [] if basket is None else list(basket["items"])


async def place_order(customer: Customer, book_id: str, quantity: int = 1) -> dict[str, Any]:
    """Put a book in the basket, order it, and wait until the checkout saga has emptied the basket."""
    added = await customer.mutate(ADD_ITEM, {"bookId": book_id, "quantity": quantity}, "addBasketItem")
    assert added["__typename"] == "AddBasketItemSuccess", added
    placed = await customer.mutate(PLACE_ORDER, {"input": {}}, "placeOrder")
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    await checked_out(customer)
    return placed


async def checked_out(customer: Customer) -> None:
    """Wait (bounded) until the checkout saga has emptied the customer's basket."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        if not await basket_items(customer):
            return
        assert asyncio.get_running_loop().time() < deadline, "the basket was never checked out"
        await asyncio.sleep(0.05)


async def order_as(client: httpx.AsyncClient, order_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (await gql(client, ORDER, {"id": order_id}))["order"]
    return found


async def top_level_error(
    client: httpx.AsyncClient, document: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": document, "variables": variables})
    body: dict[str, Any] = response.json()
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


def first_error(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "error", message
    payload = message["payload"]
    errors: list[dict[str, Any]] = payload if isinstance(payload, list) else [payload]
    return errors[0]


# ---- buyer profile


async def test_me_shows_the_token_until_an_address_is_given(customers: dict[str, Customer]) -> None:
    carol = customers["carol"]  # who never gives an address
    me = (await carol.query(ME))["me"]
    assert me == {"id": carol.buyer_id, "name": "Carol", "email": "carol@example.com", "address": None}


async def test_me_returns_the_address(alice: Customer) -> None:
    me = (await alice.query(ME))["me"]
    assert (me["id"], me["name"], me["address"]) == (alice.buyer_id, "Alice", ADDRESS)


async def test_anonymous_me_is_null(anon_http: httpx.AsyncClient) -> None:
    assert (await gql(anon_http, ME))["me"] is None


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ({"street": "", "city": "Montreal", "province": "QC"}, ["street"]),
        ({"street": "1 Main", "city": "c" * 101, "province": "QC"}, ["city"]),
        ({"street": " ", "city": "", "province": "p" * 101}, ["street", "city", "province"]),
    ],
)
async def test_bad_addresses_are_refused_and_change_nothing(
    alice: Customer, given: dict[str, str], fields: list[str]
) -> None:
    refused = await alice.mutate(UPDATE_ADDRESS, {"input": given}, "updateBuyerAddress")
    assert refused["__typename"] == "ValidationFailed", refused
    assert [f["field"] for f in refused["fields"]] == fields
    assert (await alice.query(ME))["me"]["address"] == ADDRESS


# ---- placing orders


async def test_an_order_is_placed_from_the_basket(alice: Customer, book: dict[str, Any]) -> None:
    placed = await place_order(alice, book["bookId"], quantity=2)
    order = placed["order"]
    assert (order["id"], order["status"], order["total"]) == (placed["orderId"], "NEW", "28.00")
    assert order["items"] == [
        {
            "bookId": book["bookId"],
            "name": "The Dispossessed",
            "quantity": 2,
            "unitPrice": "14.00",
            "lineTotal": "28.00",
        }
    ]
    assert order["buyer"] == {
        "id": alice.buyer_id,
        "name": "Alice",
        "email": "alice@example.com",
        "address": ADDRESS,
    }
    assert await order_as(alice.http, placed["orderId"]) == order


async def test_an_empty_basket_or_no_address_is_refused(
    customers: dict[str, Customer], alice: Customer, book: dict[str, Any]
) -> None:
    before = (await alice.query(ORDERS))["orders"]["totalCount"]
    refused = await alice.mutate(PLACE_ORDER, {"input": {}}, "placeOrder")
    assert (refused["__typename"], [f["field"] for f in refused["fields"]]) == (
        "ValidationFailed",
        ["basket"],
    )
    assert (await alice.query(ORDERS))["orders"]["totalCount"] == before

    carol = customers["carol"]
    await carol.mutate(ADD_ITEM, {"bookId": book["bookId"], "quantity": 1}, "addBasketItem")
    refused = await carol.mutate(PLACE_ORDER, {"input": {}}, "placeOrder")
    assert [f["field"] for f in refused["fields"]] == ["address"], refused
    assert (await carol.query(ORDERS))["orders"]["totalCount"] == 0


async def test_an_anonymous_caller_cannot_order(anon_http: httpx.AsyncClient) -> None:
    refused = (await gql(anon_http, PLACE_ORDER, {"input": {}}))["placeOrder"]
    assert refused["__typename"] == "Forbidden"
    assert (await top_level_error(anon_http, ORDERS, {}))["extensions"]["code"] == "FORBIDDEN"


async def test_one_idempotency_key_places_one_order(alice: Customer, book: dict[str, Any]) -> None:
    await alice.mutate(ADD_ITEM, {"bookId": book["bookId"], "quantity": 1}, "addBasketItem")
    variables = {"input": {"idempotencyKey": f"order-{uuid.uuid4().hex}"}}
    results = await asyncio.gather(*(alice.mutate(PLACE_ORDER, variables, "placeOrder") for _ in range(5)))
    assert {r["__typename"] for r in results} == {"PlaceOrderSuccess"}
    assert len({r["orderId"] for r in results}) == 1
    await checked_out(alice)


# ---- who sees what


async def test_bob_cannot_read_cancel_or_follow_alices_order(
    alice: Customer, bob: Customer, book: dict[str, Any], ws_url: str
) -> None:
    placed = await place_order(alice, book["bookId"])
    order_id = placed["orderId"]

    assert await order_as(bob.http, order_id) is None
    refused = await bob.mutate(CANCEL_ORDER, {"id": order_id}, "cancelOrder")
    assert refused["__typename"] == "NotFound", refused
    missing = await bob.mutate(CANCEL_ORDER, {"id": str(uuid.uuid4())}, "cancelOrder")
    assert missing["__typename"] == "NotFound"
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        async with Subscription(protocol, ws_url, ORDER_CHANGED, {"id": order_id}, token=bob.token) as sub:
            error = first_error(await sub.next_message())
        assert error["extensions"]["code"] == "NOT_FOUND", error

    theirs = (await bob.query(ORDERS, {"buyerId": alice.buyer_id}))["orders"]
    assert theirs["totalCount"] == 0
    assert order_id not in [e["node"]["id"] for e in (await bob.query(ORDERS))["orders"]["edges"]]
    still = await order_as(alice.http, order_id)
    assert still is not None and (still["status"], still["version"]) == ("NEW", 1)


async def test_lists_are_newest_first_and_scoped(
    alice: Customer, bob: Customer, book: dict[str, Any], http: httpx.AsyncClient
) -> None:
    first = await place_order(alice, book["bookId"])
    second = await place_order(alice, book["bookId"])
    bobs = await place_order(bob, book["bookId"])

    mine = (await alice.query(ORDERS))["orders"]
    ids = [e["node"]["id"] for e in mine["edges"]]
    assert ids.index(second["orderId"]) < ids.index(first["orderId"])
    assert bobs["orderId"] not in ids
    assert {e["node"]["buyer"]["id"] for e in mine["edges"]} == {alice.buyer_id}
    assert mine["totalCount"] == len(ids)

    admin_all = (await gql(http, ORDERS, {"first": 100}))["orders"]
    assert {first["orderId"], bobs["orderId"]} <= {e["node"]["id"] for e in admin_all["edges"]}
    only_bob = (await gql(http, ORDERS, {"buyerId": bob.buyer_id}))["orders"]
    assert {e["node"]["buyer"]["id"] for e in only_bob["edges"]} == {bob.buyer_id}

    page = (await alice.query(ORDERS, {"first": 1}))["orders"]
    after = (await alice.query(ORDERS, {"first": 1, "after": page["pageInfo"]["endCursor"]}))["orders"]
    assert [e["node"]["id"] for e in page["edges"] + after["edges"]] == ids[:2]


# ---- status changes


async def test_admin_completes_alices_order_and_she_sees_it_live(
    alice: Customer, book: dict[str, Any], http: httpx.AsyncClient, ws_url: str
) -> None:
    placed = await place_order(alice, book["bookId"])
    order_id, after = placed["orderId"], placed["position"]
    async with (
        Subscription(
            TRANSPORT_WS, ws_url, ORDER_CHANGED, {"id": order_id, "after": after}, token=alice.token
        ) as one,
        Subscription(LEGACY_WS, ws_url, MY_ORDERS_CHANGED, {"after": after}, token=alice.token) as mine,
    ):
        denied = await alice.mutate(COMPLETE_ORDER, {"id": order_id}, "completeOrder")
        assert denied["__typename"] == "Forbidden", denied
        completed = (await gql(http, COMPLETE_ORDER, {"id": order_id}))["completeOrder"]
        assert completed["__typename"] == "CompleteOrderSuccess", completed
        assert completed["order"] == {"status": "COMPLETED", "version": 2}

        change = (await one.next_data())["orderChanged"]
        assert (change["kind"], change["position"], change["orderId"]) == (
            "UPDATED",
            completed["position"],
            order_id,
        )
        assert change["order"]["status"] == "COMPLETED"
        seen = (await mine.next_data())["myOrdersChanged"]
        while seen["position"] != completed["position"]:
            seen = (await mine.next_data())["myOrdersChanged"]
        assert (seen["kind"], seen["orderId"]) == ("UPDATED", order_id)

    again = (await gql(http, COMPLETE_ORDER, {"id": order_id}))["completeOrder"]
    assert again["__typename"] == "Conflict", again
    cancel = await alice.mutate(CANCEL_ORDER, {"id": order_id}, "cancelOrder")
    assert cancel["__typename"] == "Conflict", cancel
    final = await order_as(alice.http, order_id)
    assert final is not None and (final["status"], final["version"]) == ("COMPLETED", 2)


async def test_alice_cancels_her_own_order_once(alice: Customer, book: dict[str, Any]) -> None:
    placed = await place_order(alice, book["bookId"])
    cancelled = await alice.mutate(CANCEL_ORDER, {"id": placed["orderId"]}, "cancelOrder")
    assert cancelled["__typename"] == "CancelOrderSuccess", cancelled
    assert cancelled["order"] == {"status": "CANCELLED", "version": 2}
    again = await alice.mutate(CANCEL_ORDER, {"id": placed["orderId"]}, "cancelOrder")
    assert again["__typename"] == "Conflict"
    cancelled_list = (await alice.query(ORDERS, {"status": "CANCELLED"}))["orders"]
    assert placed["orderId"] in [e["node"]["id"] for e in cancelled_list["edges"]]
    assert {e["node"]["status"] for e in cancelled_list["edges"]} == {"CANCELLED"}


# ---- malformed input


async def test_malformed_ids_are_refused(alice: Customer, http: httpx.AsyncClient, ws_url: str) -> None:
    cancel = await alice.mutate(CANCEL_ORDER, {"id": "not-an-id"}, "cancelOrder")
    assert (cancel["__typename"], cancel["fields"][0]["field"]) == ("ValidationFailed", "orderId")
    complete = (await gql(http, COMPLETE_ORDER, {"id": "42"}))["completeOrder"]
    assert (complete["__typename"], complete["fields"][0]["field"]) == ("ValidationFailed", "orderId")
    error = await top_level_error(alice.http, ORDER, {"id": "nope"})
    assert error["extensions"]["code"] == "VALIDATION_FAILED"
    error = await top_level_error(alice.http, ORDERS, {"buyerId": "nope"})
    assert error["extensions"]["fields"][0]["field"] == "buyerId"
    error = await top_level_error(alice.http, ORDERS, {"after": "garbage"})
    assert error["extensions"]["fields"][0]["field"] == "after"
    async with Subscription(TRANSPORT_WS, ws_url, ORDER_CHANGED, {"id": "x"}, token=alice.token) as sub:
        assert first_error(await sub.next_message())["extensions"]["code"] == "VALIDATION_FAILED"


# ---- checkout integrity


async def test_a_book_added_after_placing_an_order_stays_in_the_basket(
    alice: Customer, book: dict[str, Any], http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    later = await create_book(http, refs, name="The Word for World Is Forest", price="9.00", priceSale=None)
    await alice.mutate(ADD_ITEM, {"bookId": book["bookId"], "quantity": 2}, "addBasketItem")
    placed = await alice.mutate(PLACE_ORDER, {"input": {}}, "placeOrder")
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    added = await alice.mutate(ADD_ITEM, {"bookId": later["bookId"], "quantity": 1}, "addBasketItem")
    assert added["__typename"] == "AddBasketItemSuccess", added

    # The projection may show the checkout before or after the addition: wait for both.
    wanted = [{"bookId": later["bookId"], "quantity": 1}]
    deadline = asyncio.get_running_loop().time() + WAIT
    while (items := await basket_items(alice)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, items
        await asyncio.sleep(0.05)
    order = await order_as(alice.http, placed["orderId"])
    assert order is not None and order["status"] == "NEW"
    assert [(i["bookId"], i["quantity"]) for i in order["items"]] == [(book["bookId"], 2)]


async def test_two_orders_of_one_basket_version_place_one(alice: Customer, book: dict[str, Any]) -> None:
    before = (await alice.query(ORDERS))["orders"]["totalCount"]
    await alice.mutate(ADD_ITEM, {"bookId": book["bookId"], "quantity": 1}, "addBasketItem")
    twice = (alice.mutate(PLACE_ORDER, {"input": {}}, "placeOrder") for _ in range(2))
    results = await asyncio.gather(*twice)
    placed = [r for r in results if r["__typename"] == "PlaceOrderSuccess"]
    assert len(placed) == 1, results
    # The other one either took the same basket version (Conflict) or, when the checkout saga was
    # quicker than it, found the basket already checked out: both refuse it, neither orders twice.
    (loser,) = (r for r in results if r is not placed[0])
    empty = loser["__typename"] == "ValidationFailed" and loser["fields"][0]["field"] == "basket"
    assert loser["__typename"] == "Conflict" or empty, results
    await checked_out(alice)
    assert (await alice.query(ORDERS))["orders"]["totalCount"] == before + 1
