"""Idempotency keys over real HTTP: a repeat returns the first result; a reused key is refused.

Each test is one mutation: key K succeeds; K with the same input returns the same result; K with another
input is a Conflict (code IDEMPOTENCY_KEY_REUSED) and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.clients import bearer, gql
from tests.e2e.conftest import MakeToken
from tests.e2e.operations import ERRORS, book_input, create_book, history_length, settled_book_count

pytestmark = pytest.mark.e2e

REUSED = "IDEMPOTENCY_KEY_REUSED"


def _mutation(name: str, input_type: str, success: str, fields: str) -> str:
    return f"""
mutation($input: {input_type}!) {{ {name}(input: $input) {{
  __typename
  ... on {success} {{ {fields} position }}
  {ERRORS}
}} }}"""


ADD_ITEM = _mutation("addBasketItem", "AddBasketItemInput", "AddBasketItemSuccess", "basketId")
UPDATE_ADDRESS = _mutation(
    "updateBuyerAddress", "UpdateBuyerAddressInput", "UpdateBuyerAddressSuccess", "buyerId"
)
PLACE_ORDER = _mutation("placeOrder", "PlaceOrderInput", "PlaceOrderSuccess", "orderId order { note }")
CREATE_BOOK = _mutation("createBook", "CreateBookInput", "CreateBookSuccess", "bookId")
ADDRESS = {"street": "12 Rue des Lilas", "city": "Montreal", "province": "QC"}


@pytest.fixture
async def carol(server: str, make_token: MakeToken) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh customer per test, so no basket or order of another test mixes in."""
    token = make_token(f"carol-{uuid.uuid4().hex[:8]}", name="Carol", email="carol@example.com")
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        yield client


@pytest.fixture(scope="module")
async def book(http: httpx.AsyncClient, refs: dict[str, Any]) -> dict[str, Any]:
    return await create_book(http, refs, name="The Word for World Is Forest", price="11.00", priceSale=None)


async def mutate(client: httpx.AsyncClient, document: str, field: str, **input: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, document, {"input": input}))[field]
    return result


def assert_reused(result: dict[str, Any]) -> None:
    assert result["__typename"] == "Conflict", result
    assert result["code"] == REUSED, result
    assert "different request" in result["message"], result


async def test_add_basket_item_key_reused_for_another_book_quantity(
    http: httpx.AsyncClient, carol: httpx.AsyncClient, book: dict[str, Any]
) -> None:
    key = f"add-{uuid.uuid4().hex}"
    first = await mutate(
        carol, ADD_ITEM, "addBasketItem", bookId=book["bookId"], quantity=1, idempotencyKey=key
    )
    assert first["__typename"] == "AddBasketItemSuccess", first
    again = await mutate(
        carol, ADD_ITEM, "addBasketItem", bookId=book["bookId"], quantity=1, idempotencyKey=key
    )
    assert again == first
    events = await history_length(http, first["basketId"])

    other = await mutate(
        carol, ADD_ITEM, "addBasketItem", bookId=book["bookId"], quantity=3, idempotencyKey=key
    )
    assert_reused(other)
    assert await history_length(http, first["basketId"]) == events


async def test_update_buyer_address_key_reused_for_another_address(
    http: httpx.AsyncClient, carol: httpx.AsyncClient
) -> None:
    key = f"address-{uuid.uuid4().hex}"
    first = await mutate(carol, UPDATE_ADDRESS, "updateBuyerAddress", **ADDRESS, idempotencyKey=key)
    assert first["__typename"] == "UpdateBuyerAddressSuccess", first
    again = await mutate(carol, UPDATE_ADDRESS, "updateBuyerAddress", **ADDRESS, idempotencyKey=key)
    assert again == first
    events = await history_length(http, first["buyerId"])

    moved = {**ADDRESS, "city": "Quebec"}
    other = await mutate(carol, UPDATE_ADDRESS, "updateBuyerAddress", **moved, idempotencyKey=key)
    assert_reused(other)
    assert await history_length(http, first["buyerId"]) == events


async def test_place_order_key_reused_with_another_note(
    http: httpx.AsyncClient, carol: httpx.AsyncClient, book: dict[str, Any]
) -> None:
    assert (await mutate(carol, UPDATE_ADDRESS, "updateBuyerAddress", **ADDRESS))["__typename"].endswith(
        "Success"
    )
    added = await mutate(carol, ADD_ITEM, "addBasketItem", bookId=book["bookId"], quantity=1)
    assert added["__typename"] == "AddBasketItemSuccess", added
    key = f"order-{uuid.uuid4().hex}"
    first = await mutate(carol, PLACE_ORDER, "placeOrder", note="leave at the door", idempotencyKey=key)
    assert first["__typename"] == "PlaceOrderSuccess", first
    again = await mutate(carol, PLACE_ORDER, "placeOrder", note="leave at the door", idempotencyKey=key)
    assert (again["orderId"], again["position"]) == (first["orderId"], first["position"])
    events = await history_length(http, first["orderId"])

    other = await mutate(carol, PLACE_ORDER, "placeOrder", note="ring twice", idempotencyKey=key)
    assert_reused(other)
    assert await history_length(http, first["orderId"]) == events


async def test_create_book_key_reused_for_another_book(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    key = f"book-{uuid.uuid4().hex}"
    given = book_input(refs, name="Rocannon's World", idempotencyKey=key)
    first = await mutate(http, CREATE_BOOK, "createBook", **given)
    assert first["__typename"] == "CreateBookSuccess", first
    # The server mints a new book id per request: a true repeat must still be recognised.
    again = await mutate(http, CREATE_BOOK, "createBook", **given)
    assert again == first
    books = await settled_book_count(http)

    other = await mutate(http, CREATE_BOOK, "createBook", **{**given, "name": "Planet of Exile"})
    assert_reused(other)
    assert await settled_book_count(http) == books
