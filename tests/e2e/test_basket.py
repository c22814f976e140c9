"""Baskets over real HTTP and websockets: two customers, each with their own basket and changes."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.ids import basket_id_of, customer_id_of
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, Subscription, bearer
from tests.e2e.conftest import MakeToken
from tests.e2e.operations import ERRORS, create_book, update_book

pytestmark = pytest.mark.e2e

BASKET_FIELDS = (
    "id totalPrice updatedAt items { bookId quantity unitPrice lineTotal available book { id name } }"
)
MY_BASKET = f"{{ myBasket {{ {BASKET_FIELDS} }} }}"
BASKET_CHANGED = f"""subscription($after: String) {{
  basketChanged(after: $after) {{ kind position basketId basket {{ {BASKET_FIELDS} }} }} }}"""


def _mutation(name: str, input_type: str, success: str) -> str:
    return f"""
mutation($input: {input_type}!) {{ {name}(input: $input) {{
  __typename
  ... on {success} {{ basketId position basket {{ {BASKET_FIELDS} }} }}
  {ERRORS}
}} }}"""


ADD = _mutation("addBasketItem", "AddBasketItemInput", "AddBasketItemSuccess")
UPDATE = _mutation("updateBasketItem", "UpdateBasketItemInput", "UpdateBasketItemSuccess")
REMOVE = _mutation("removeBasketItem", "RemoveBasketItemInput", "RemoveBasketItemSuccess")
CLEAR = f"""
mutation {{ clearBasket {{
  __typename
  ... on ClearBasketSuccess {{ basketId position basket {{ {BASKET_FIELDS} }} }}
  {ERRORS}
}} }}"""
CLEAR_WITH_KEY = f"""
mutation($key: String) {{ clearBasket(input: {{idempotencyKey: $key}}) {{
  __typename
  ... on ClearBasketSuccess {{ basketId position basket {{ {BASKET_FIELDS} }} }}
  {ERRORS}
}} }}"""


@dataclass
class Customer:
    """A signed-in customer of these tests alone: other e2e tests never touch this basket."""

    http: httpx.AsyncClient
    token: str
    customer_id: str

    async def send(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mutate(self, query: str, **input: Any) -> dict[str, Any]:
        body = await self.send(query, {"input": input})
        assert "errors" not in body, body
        result: dict[str, Any] = next(iter(body["data"].values()))
        return result

    async def add(self, book_id: str, quantity: int = 1) -> dict[str, Any]:
        result = await self.mutate(ADD, bookId=book_id, quantity=quantity)
        assert result["__typename"] == "AddBasketItemSuccess", result
        return result

    async def basket(self) -> dict[str, Any]:
        body = await self.send(MY_BASKET)
        assert "errors" not in body, body
        basket: dict[str, Any] = body["data"]["myBasket"]
        return basket


async def _customer(server: str, make_token: MakeToken, name: str) -> AsyncIterator[Customer]:
    subject = f"{name}-{uuid.uuid4().hex[:12]}"
    token = make_token(subject, name=name.title(), email=f"{subject}@example.com")
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        yield Customer(client, token, customer_id_of(subject))


@pytest.fixture
async def alice(server: str, make_token: MakeToken) -> AsyncIterator[Customer]:
    async for customer in _customer(server, make_token, "alice"):
        yield customer


@pytest.fixture
async def bob(server: str, make_token: MakeToken) -> AsyncIterator[Customer]:
    async for customer in _customer(server, make_token, "bob"):
        yield customer


@pytest.fixture
async def books(http: httpx.AsyncClient, refs: dict[str, Any]) -> list[str]:
    """Two books: 12.50 on sale at 9.99, and 20.00 with no sale price."""
    on_sale = await create_book(http, refs, name="The Dispossessed", price="12.50", priceSale="9.99")
    full = await create_book(http, refs, name="The Lathe of Heaven", price="20.00", priceSale=None)
    return [on_sale["bookId"], full["bookId"]]


def lines(basket: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    return [(i["bookId"], i["quantity"], i["unitPrice"], i["lineTotal"]) for i in basket["items"]]


async def test_a_new_customer_has_an_empty_basket(alice: Customer) -> None:
    basket = await alice.basket()
    assert (basket["id"], basket["items"], basket["totalPrice"]) == (
        basket_id_of(alice.customer_id),
        [],
        "0.00",
    )


async def test_each_customer_sees_only_their_own_basket(
    alice: Customer, bob: Customer, books: list[str]
) -> None:
    on_sale, full = books
    await alice.add(on_sale, 2)
    added = await alice.add(full, 1)
    bobs = await bob.add(full, 3)

    assert added["basketId"] == basket_id_of(alice.customer_id)
    assert lines(added["basket"]) == [(on_sale, 2, "9.99", "19.98"), (full, 1, "20.00", "20.00")]
    assert added["basket"]["totalPrice"] == "39.98"
    assert added["basket"]["items"][0]["book"] == {"id": on_sale, "name": "The Dispossessed"}
    assert lines(bobs["basket"]) == [(full, 3, "20.00", "60.00")]
    assert await alice.basket() == added["basket"]
    assert await bob.basket() == bobs["basket"]


async def test_update_remove_and_clear(alice: Customer, books: list[str]) -> None:
    on_sale, full = books
    await alice.add(on_sale, 1)
    await alice.add(full, 1)
    updated = await alice.mutate(UPDATE, bookId=on_sale, quantity=10)
    removed = await alice.mutate(REMOVE, bookId=full)

    assert updated["__typename"] == "UpdateBasketItemSuccess"
    assert lines(updated["basket"]) == [(on_sale, 10, "9.99", "99.90"), (full, 1, "20.00", "20.00")]
    assert lines(removed["basket"]) == [(on_sale, 10, "9.99", "99.90")]
    cleared = (await alice.send(CLEAR))["data"]["clearBasket"]
    assert (cleared["__typename"], cleared["basket"]["items"], cleared["basket"]["totalPrice"]) == (
        "ClearBasketSuccess",
        [],
        "0.00",
    )
    again = (await alice.send(CLEAR_WITH_KEY, {"key": "clear-twice"}))["data"]["clearBasket"]
    assert again["position"] == cleared["position"]  # an empty basket stays as it is


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_basket_changed_delivers_the_callers_own_changes_only(
    alice: Customer, bob: Customer, books: list[str], http: httpx.AsyncClient, ws_url: str, protocol: str
) -> None:
    on_sale, full = books
    start = await alice.add(on_sale, 1)
    async with Subscription(
        protocol, ws_url, BASKET_CHANGED, {"after": start["position"]}, token=alice.token
    ) as subscription:
        await bob.add(on_sale, 5)  # would arrive first if bob's changes reached alice
        mine = await alice.add(full, 2)
        seen = (await subscription.next_data())["basketChanged"]
        repriced = await update_book(http, on_sale, priceSale="5.00")
        follow_up = (await subscription.next_data())["basketChanged"]

    assert (seen["kind"], seen["position"], seen["basketId"]) == (
        "UPDATED",
        mine["position"],
        basket_id_of(alice.customer_id),
    )
    assert lines(seen["basket"]) == [(on_sale, 1, "9.99", "9.99"), (full, 2, "20.00", "40.00")]
    # A catalog price change re-announces every basket holding the book.
    assert (follow_up["kind"], follow_up["position"]) == ("UPDATED", repriced["position"])
    assert lines(follow_up["basket"])[0] == (on_sale, 1, "5.00", "5.00")
    assert follow_up["basket"]["totalPrice"] == "45.00"


@pytest.mark.parametrize("quantity", [0, 100, -1])
async def test_quantities_outside_1_to_99_are_validation_failures(
    alice: Customer, books: list[str], quantity: int
) -> None:
    on_sale, _ = books
    before = await alice.add(on_sale, 1)
    for query in (ADD, UPDATE):
        refused = await alice.mutate(query, bookId=on_sale, quantity=quantity)
        assert refused["__typename"] == "ValidationFailed", refused
        assert refused["code"] == "VALIDATION_FAILED"
        assert [f["field"] for f in refused["fields"]] == ["quantity"]
    assert await alice.basket() == before["basket"]


async def test_a_line_holds_at_most_99(alice: Customer, books: list[str]) -> None:
    on_sale, _ = books
    full = await alice.add(on_sale, 99)
    refused = await alice.mutate(ADD, bookId=on_sale, quantity=1)
    assert refused["__typename"] == "ValidationFailed"
    assert "at most 99" in refused["fields"][0]["message"]
    assert await alice.basket() == full["basket"]


async def test_fifty_concurrent_adds_for_one_customer_all_succeed(alice: Customer, books: list[str]) -> None:
    # A double click is not a conflict: adds commute, so the server re-decides a lost race itself.
    adds = 50
    answers = await asyncio.gather(*(alice.mutate(ADD, bookId=books[n % 2], quantity=1) for n in range(adds)))
    assert Counter(answer["__typename"] for answer in answers) == {"AddBasketItemSuccess": adds}
    basket = await alice.basket()
    assert {item["bookId"]: item["quantity"] for item in basket["items"]} == {
        books[0]: adds // 2,
        books[1]: adds // 2,
    }


async def test_unknown_malformed_and_absent_books_are_typed_errors(alice: Customer, books: list[str]) -> None:
    on_sale, full = books
    before = await alice.add(on_sale, 1)
    unknown = str(uuid.uuid4())
    cases = [
        (ADD, {"bookId": unknown, "quantity": 1}, "NotFound"),
        (ADD, {"bookId": "not-an-id", "quantity": 1}, "ValidationFailed"),
        (UPDATE, {"bookId": "not-an-id", "quantity": 1}, "ValidationFailed"),
        (REMOVE, {"bookId": "not-an-id"}, "ValidationFailed"),
        (UPDATE, {"bookId": full, "quantity": 2}, "NotFound"),  # not in the basket
        (REMOVE, {"bookId": full}, "NotFound"),
        (REMOVE, {"bookId": unknown}, "NotFound"),
    ]
    for query, given, typename in cases:
        result = await alice.mutate(query, **given)
        assert result["__typename"] == typename, (given, result)
        if typename == "ValidationFailed":
            assert [f["field"] for f in result["fields"]] == ["bookId"]
        else:
            assert result["code"] == "NOT_FOUND" and result["message"]
    assert await alice.basket() == before["basket"]


async def test_a_deleted_book_cannot_be_added(
    alice: Customer, http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book_id = (await create_book(http, refs, name="Soon gone"))["bookId"]
    deleted = await http.post(
        "/graphql",
        json={
            "query": "mutation($id: ID!) { deleteBook(input: {id: $id}) { __typename } }",
            "variables": {"id": book_id},
        },
    )
    assert deleted.json()["data"]["deleteBook"]["__typename"] == "DeleteBookSuccess"
    refused = await alice.mutate(ADD, bookId=book_id, quantity=1)
    assert (refused["__typename"], refused["code"]) == ("NotFound", "NOT_FOUND")
    assert (await alice.basket())["items"] == []


async def test_anonymous_callers_are_forbidden_and_change_nothing(
    anon_http: httpx.AsyncClient, books: list[str], ws_url: str
) -> None:
    on_sale, _ = books
    attempts = [
        (ADD, {"input": {"bookId": on_sale, "quantity": 1}}),
        (UPDATE, {"input": {"bookId": on_sale, "quantity": 1}}),
        (REMOVE, {"input": {"bookId": on_sale}}),
        (CLEAR, {}),
    ]
    for query, variables in attempts:
        body = (await anon_http.post("/graphql", json={"query": query, "variables": variables})).json()
        result = next(iter(body["data"].values()))
        assert (result["__typename"], result["code"]) == ("Forbidden", "FORBIDDEN"), body

    body = (await anon_http.post("/graphql", json={"query": MY_BASKET})).json()
    assert body["data"] == {"myBasket": None}
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}

    async with Subscription(TRANSPORT_WS, ws_url, BASKET_CHANGED) as subscription:
        message = await subscription.next_message()
    assert message["type"] == "error", message
    assert message["payload"][0]["extensions"] == {"code": "FORBIDDEN"}
