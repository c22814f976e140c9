"""Create, read, update and delete the catalog through the real HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.clients import gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.e2e.operations import (
    BOOK,
    CREATE_BOOK,
    DELETE_AUTHOR,
    book_input,
    create_book,
    history_length,
    update_book,
)

pytestmark = pytest.mark.e2e


async def test_created_book_shows_in_payload_and_query(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    created = await create_book(http, refs)

    payload_book = created["book"]
    assert payload_book["id"] == created["bookId"]
    assert payload_book["name"] == "The Left Hand of Darkness"
    assert payload_book["price"] == "12.50"
    assert payload_book["priceSale"] == "9.99"
    assert payload_book["status"] == "IN_STOCK"
    assert payload_book["category"]["id"] == refs["categoryId"]
    assert payload_book["publisher"]["name"] == "Ace Books"
    assert [a["name"] for a in payload_book["authors"]] == ["Ursula K. Le Guin"]
    assert payload_book["createdAt"].endswith("Z")
    queried = (await gql(http, BOOK, {"id": created["bookId"]}))["book"]
    assert queried == payload_book


async def test_update_keeps_unset_fields_and_clears_explicit_nulls(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs)

    updated = await update_book(http, created["bookId"], price="15.00", priceSale=None)

    assert updated["__typename"] == "UpdateBookSuccess", updated
    book = updated["book"]
    assert (book["price"], book["priceSale"]) == ("15.00", None)
    assert book["description"] == "Genly Ai on the planet Gethen."
    assert book["version"] == created["book"]["version"] + 1


async def test_stale_expected_version_is_a_conflict(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    created = await create_book(http, refs)
    version = created["book"]["version"]
    assert (await update_book(http, created["bookId"], name="First", expectedVersion=version))[
        "__typename"
    ] == "UpdateBookSuccess"

    stale = await update_book(http, created["bookId"], name="Second", expectedVersion=version)

    assert stale["__typename"] == "Conflict", stale
    assert stale["code"] and stale["message"]
    assert await history_length(http, created["bookId"]) == 2


async def test_deleting_a_referenced_author_is_a_conflict(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    await create_book(http, refs)

    result = (await gql(http, DELETE_AUTHOR, {"id": refs["authorId"]}))["deleteAuthor"]

    assert result["__typename"] == "Conflict", result
    assert await history_length(http, refs["authorId"]) == 1


async def test_repeated_idempotency_key_returns_the_first_result(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    given = book_input(refs, name="Idempotent", idempotencyKey="create-idempotent-book")

    first = (await gql(http, CREATE_BOOK, {"input": given}))["createBook"]
    second = (await gql(http, CREATE_BOOK, {"input": given}))["createBook"]

    assert first["__typename"] == second["__typename"] == "CreateBookSuccess"
    assert second["bookId"] == first["bookId"]
    assert second["position"] == first["position"]
    assert await history_length(http, first["bookId"]) == 1


async def test_deleted_book_leaves_the_read_model_but_keeps_its_history(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs)
    delete = """mutation($id: ID!) { deleteBook(input: {id: $id}) {
      __typename ... on DeleteBookSuccess { bookId position book { id } } } }"""

    deleted = (await gql(http, delete, {"id": created["bookId"]}))["deleteBook"]

    assert deleted["__typename"] == "DeleteBookSuccess"
    assert deleted["book"] is None
    assert (await gql(http, BOOK, {"id": created["bookId"]}))["book"] is None
    assert await history_length(http, created["bookId"]) == 2


async def test_queries_list_filter_and_page(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    # An author of its own: the session's shared one also has other modules' books in this price range.
    author = (await gql(http, CREATE_AUTHOR, {"name": "Paging Author"}))["createAuthor"]["authorId"]
    refs = {**refs, "authorId": author}
    for name, price in (("Paging A", "30.00"), ("Paging B", "31.00"), ("Paging C", "32.00")):
        last = await create_book(http, refs, name=name, price=price, priceSale=None)
    query = """query($after: String, $filter: BookFilter) {
      books(first: 2, after: $after, filter: $filter, orderBy: PRICE, descending: true) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { name price } } } }"""
    price_filter = {"minPrice": "30.00", "maxPrice": "32.00", "authorIds": [refs["authorId"]]}
    headers = {"Bookworm-Position": last["position"]}

    first = (await gql(http, query, {"filter": price_filter}, headers))["books"]
    after = first["pageInfo"]["endCursor"]
    second = (await gql(http, query, {"filter": price_filter, "after": after}, headers))["books"]

    assert first["totalCount"] == 3
    assert [e["node"]["name"] for e in first["edges"]] == ["Paging C", "Paging B"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["name"] for e in second["edges"]] == ["Paging A"]
    assert second["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    "selection",
    [
        "n: totalCount edges { node { name } }",
        "...Counted edges { node { name } }",
        "... on BookConnection { totalCount } edges { node { name } }",
        "... @include(if: true) { n: totalCount } edges { node { name } }",
        "edges { node { name } }",
    ],
)
async def test_total_count_is_counted_however_it_is_selected(
    http: httpx.AsyncClient, refs: dict[str, Any], selection: str
) -> None:
    # The page is counted only when the request may select totalCount (a name or a fragment says so).
    author = (await gql(http, CREATE_AUTHOR, {"name": "Counted Author"}))["createAuthor"]["authorId"]
    for name in ("Counted A", "Counted B", "Counted C"):
        last = await create_book(http, {**refs, "authorId": author}, name=name)
    query = f"""query($filter: BookFilter) {{ books(first: 2, filter: $filter) {{ {selection} }} }}
      fragment Counted on BookConnection {{ totalCount }}"""
    if "Counted" not in selection:
        query = query.split("\n")[0]
    headers = {"Bookworm-Position": last["position"]}

    books = (await gql(http, query, {"filter": {"authorIds": [author]}}, headers))["books"]

    assert [e["node"]["name"] for e in books["edges"]] == ["Counted A", "Counted B"]
    counted = {key: value for key, value in books.items() if key != "edges"}
    assert counted == (
        {} if selection.startswith("edges") else {"n" if "n:" in selection else "totalCount": 3}
    )


async def test_author_books_categories_publishers_and_history(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs, name="Nested lookups")
    headers = {"Bookworm-Position": created["position"]}
    query = """query($id: ID!, $book: ID!) {
      author(id: $id) { name books(first: 100) { totalCount edges { node { id authors { id } } } } }
      authors(search: "le guin") { totalCount edges { node { id } } }
      categories { id name bookCount }
      publishers { id name }
      streamHistory(streamId: $book) { position streamId version type schemaVersion data metadata recordedAt }
    }"""

    data = await gql(http, query, {"id": refs["authorId"], "book": created["bookId"]}, headers)

    assert created["bookId"] in {e["node"]["id"] for e in data["author"]["books"]["edges"]}
    assert refs["authorId"] in {e["node"]["id"] for e in data["authors"]["edges"]}
    category = next(c for c in data["categories"] if c["id"] == refs["categoryId"])
    assert category["bookCount"] >= 1
    assert refs["publisherId"] in {p["id"] for p in data["publishers"]}
    [event] = data["streamHistory"]
    assert (event["streamId"], event["version"], event["type"]) == (created["bookId"], 1, "BookCreated")
    assert event["position"] == created["position"]
    assert event["metadata"]["actor"] == "user:admin"


@pytest.mark.parametrize(
    "selection",
    [
        *"id name description price priceSale status version averageRating totalReviews".split(),
        *"createdAt updatedAt".split(),
        "category { id name bookCount }",
        "publisher { id name }",
        "authors { id name }",
        "__typename price",
        "p: price n: name",
        "...Priced",
        "... on Book { createdAt authors { id name } }",
        "... @include(if: false) { status }",
    ],
)
async def test_a_page_answers_each_selection_as_the_whole_row_does(
    http: httpx.AsyncClient, refs: dict[str, Any], selection: str
) -> None:
    # A page reads only the columns its nodes' selection needs (through fragments, aliases and
    # directives): whatever it selects, its node answers as the book read whole does (createBook's payload
    # reads its book with every column, through the loaders).
    author = (await gql(http, CREATE_AUTHOR, {"name": "Selected Author"}))["createAuthor"]["authorId"]
    created = await create_book(http, {**refs, "authorId": author}, name="Selected Columns")
    whole = {**created["book"], "__typename": "Book", "p": created["book"]["price"], "n": "Selected Columns"}
    query = """query($filter: BookFilter) {
      books(first: 3, filter: $filter) { edges { node { %s } } }
    } fragment Priced on Book { price priceSale name }"""
    query = query if "Priced" in selection else query.split(" fragment")[0]
    variables = {"filter": {"authorIds": [author]}}

    books = await gql(http, query % selection, variables, {"Bookworm-Position": created["position"]})

    [edge] = books["books"]["edges"]
    assert edge["node"] == {key: whole[key] for key in edge["node"]}
    assert edge["node"] or "@include" in selection
