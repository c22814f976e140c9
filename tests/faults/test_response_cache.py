"""The response cache across processes: two API processes and a worker, each API keeping answers.

Once a change's notice has reached an API process (its catalogChanged subscriber has it), that process
never answers with the old value; a request asking for a newer position (Bookworm-Position) is never
answered by an older read; a mutation's payload never comes from the cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.clients import TRANSPORT_WS, Subscription, bearer, gql
from tests.faults.cluster import Cluster, Proc, admin_token
from tests.faults.traffic import CREATE_BOOK, UPDATE_BOOK, Refs, make_refs

BOOK = "query($id: ID!) { book(id: $id) { id name authors { id name } category { name bookCount } } }"
RENAME_AUTHOR = """mutation($id: ID!, $name: String!) { renameAuthor(input: {id: $id, name: $name}) {
  __typename ... on RenameAuthorSuccess { position } } }"""
CATALOG_CHANGED = "subscription { catalogChanged { kind position entity entityId } }"
TRIES = 50  # reads until an answer is served from the cache: a notice may drop it meanwhile
# A busy CI machine may take longer than the default 5 s to apply a change to every read model.
PATIENT = {"BOOKWORM_READ_YOUR_WRITES_TIMEOUT": "60"}


async def read_book(http: httpx.AsyncClient, book_id: str, position: str | None = None) -> tuple[Any, str]:
    """Return the book and the response's Bookworm-Cache header ("" when the cache was not used)."""
    headers = {} if position is None else {"Bookworm-Position": position}
    body = {"query": BOOK, "variables": {"id": book_id}}
    response = await http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "errors" not in answer, answer
    return answer["data"]["book"], response.headers.get("bookworm-cache", "")


async def cached(http: httpx.AsyncClient, book_id: str, position: str) -> Any:
    """Read the book (from `position` on) until the cache answers; return that answer."""
    book, _ = await read_book(http, book_id, position)
    for _ in range(TRIES):
        book, source = await read_book(http, book_id)
        if source == "HIT":
            return book
    raise AssertionError(f"no answer came from the cache in {TRIES} reads")


async def announced(subscriptions: list[Subscription], entity: str, entity_id: str, position: str) -> None:
    """Wait until every subscription has received the change (so its API process has heard it)."""
    for subscription in subscriptions:
        while True:
            change = (await subscription.next_data())["catalogChanged"]
            if (change["entity"], change["entityId"], change["position"]) == (entity, entity_id, position):
                break


async def create_book(http: httpx.AsyncClient, refs: Refs, name: str) -> dict[str, Any]:
    book_input = {
        "name": name,
        "price": "10.00",
        "categoryId": refs.category_id,
        "publisherId": refs.publisher_id,
        "authorIds": [refs.author_id],
    }
    created: dict[str, Any] = (await gql(http, CREATE_BOOK, {"input": book_input}))["createBook"]
    assert created["__typename"] == "CreateBookSuccess", created
    return created


async def test_no_api_process_serves_an_answer_older_than_a_change_it_has_heard(cluster: Cluster) -> None:
    apis: list[Proc] = [cluster.api("api-1", **PATIENT), cluster.api("api-2", **PATIENT)]
    cluster.worker()
    token = admin_token()
    refs = await make_refs(apis[0].url, token)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=api.url, headers=bearer(token), timeout=90)
            )
            for api in apis
        ]
        book = await create_book(clients[0], refs, "Before the Change")
        for http in clients:
            answer = await cached(http, book["bookId"], book["position"])
            assert answer["name"] == "Before the Change"
        subscriptions = [
            await stack.enter_async_context(Subscription(TRANSPORT_WS, api.ws_url, CATALOG_CHANGED))
            for api in apis
        ]

        change = {"id": book["bookId"], "name": "After the Change"}
        updated = (await gql(clients[0], UPDATE_BOOK, {"input": change}))["updateBook"]
        assert updated["__typename"] == "UpdateBookSuccess", updated
        await announced(subscriptions, "Book", book["bookId"], updated["position"])
        for http in clients:
            answer, _ = await read_book(http, book["bookId"])
            assert answer["name"] == "After the Change"
            assert (await cached(http, book["bookId"], updated["position"]))["name"] == "After the Change"

        # The author's row, read through the book, is dropped by the author's own notice.
        renamed = await gql(clients[1], RENAME_AUTHOR, {"id": refs.author_id, "name": "Renamed Author"})
        position = renamed["renameAuthor"]["position"]
        await announced(subscriptions, "Author", refs.author_id, position)
        for http in clients:
            answer, _ = await read_book(http, book["bookId"])
            assert [a["name"] for a in answer["authors"]] == ["Renamed Author"]

        # A new book in the category changes its book count: the category's listing tag drops it.
        count = answer["category"]["bookCount"]
        second = await create_book(clients[0], refs, "Second Book")
        await announced(subscriptions, "Book", second["bookId"], second["position"])
        for http in clients:
            answer, _ = await read_book(http, book["bookId"])
            assert answer["category"]["bookCount"] == count + 1


async def test_a_newer_position_is_never_answered_by_an_older_read(cluster: Cluster) -> None:
    api = cluster.api("api", **PATIENT)
    cluster.worker()
    token = admin_token()
    refs = await make_refs(api.url, token)
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(token), timeout=90) as http:
        book = await create_book(http, refs, "Old Name")
        await cached(http, book["bookId"], book["position"])
        for round_number in range(10):
            name = f"New Name {round_number}"
            updated = await gql(http, UPDATE_BOOK, {"input": {"id": book["bookId"], "name": name}})
            # Read at once, before the notice may have arrived: the position alone must keep it fresh.
            answer, _ = await read_book(http, book["bookId"], updated["updateBook"]["position"])
            assert answer["name"] == name


@dataclass
class Shop:
    cluster: Cluster
    http: httpx.AsyncClient
    book_id: str


@pytest.fixture
async def shop(cluster: Cluster) -> AsyncIterator[Shop]:
    """One `serve` with its workers, an admin's client, and a book whose answer the cache holds."""
    api = cluster.api("api", workers=True, **PATIENT)
    token = admin_token()
    refs = await make_refs(api.url, token)
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(token), timeout=90) as http:
        book = await create_book(http, refs, "Kept")
        await cached(http, book["bookId"], book["position"])
        yield Shop(cluster, http, book["bookId"])


async def test_a_rebuild_drops_every_cached_answer(shop: Shop) -> None:
    cluster, http, book_id = shop.cluster, shop.http, shop.book_id
    rebuilt = await cluster.cli("projections", "rebuild", "catalog")
    assert rebuilt.status == 0, rebuilt.stderr
    for _ in range(TRIES):  # the rebuild's announcement reaches the API process a moment later
        _, source = await read_book(http, book_id)
        if source == "MISS":
            break
    else:
        raise AssertionError("the cached answer outlived the rebuild")


async def test_mutations_and_no_cache_requests_never_use_the_cache(shop: Shop) -> None:
    http, book_id = shop.http, shop.book_id
    fresh = await http.post(
        "/graphql",
        json={"query": BOOK, "variables": {"id": book_id}},
        headers={"Cache-Control": "no-cache"},
    )
    assert fresh.status_code == 200 and "bookworm-cache" not in fresh.headers
    positions = set()
    for name in ("Again", "Kept", "Again"):
        body = {"query": UPDATE_BOOK, "variables": {"input": {"id": book_id, "name": name}}}
        response = await http.post("/graphql", json=body)
        assert "bookworm-cache" not in response.headers
        updated = response.json()["data"]["updateBook"]
        assert updated["__typename"] == "UpdateBookSuccess", updated
        positions.add(updated["position"])
    assert len(positions) == 3  # each one ran: the third, sent as the first was, made its own event
