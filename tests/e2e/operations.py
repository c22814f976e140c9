"""GraphQL documents the e2e tests send, and small helpers built on them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.clients import gql

BOOK_FIELDS = """
  id name description price priceSale status version averageRating totalReviews createdAt updatedAt
  category { id name bookCount } publisher { id name } authors { id name }
"""
ERRORS = """
  ... on UserError { __typename message code }
  ... on ValidationFailed { fields { field message } }
"""

CREATE_BOOK = f"""
mutation($input: CreateBookInput!) {{ createBook(input: $input) {{
  __typename
  ... on CreateBookSuccess {{ bookId position book {{ {BOOK_FIELDS} }} }}
  {ERRORS}
}} }}"""

UPDATE_BOOK = f"""
mutation($input: UpdateBookInput!) {{ updateBook(input: $input) {{
  __typename
  ... on UpdateBookSuccess {{ bookId position book {{ {BOOK_FIELDS} }} }}
  {ERRORS}
}} }}"""

DELETE_AUTHOR = f"""
mutation($id: ID!) {{ deleteAuthor(input: {{id: $id}}) {{
  __typename
  ... on DeleteAuthorSuccess {{ authorId position }}
  {ERRORS}
}} }}"""

BOOK = f"query($id: ID!) {{ book(id: $id) {{ {BOOK_FIELDS} }} }}"
BOOK_COUNT = "{ books(first: 1) { totalCount } }"
HISTORY = "query($id: ID!) { streamHistory(streamId: $id) { position version type data } }"
PROBE = """
mutation($name: String!) { createPublisher(input: {name: $name}) {
  ... on CreatePublisherSuccess { position } } }"""


def book_input(refs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    given = {
        "name": "The Left Hand of Darkness",
        "description": "Genly Ai on the planet Gethen.",
        "price": "12.50",
        "priceSale": "9.99",
        "categoryId": refs["categoryId"],
        "publisherId": refs["publisherId"],
        "authorIds": [refs["authorId"]],
    }
    return {**given, **overrides}


async def create_book(http: httpx.AsyncClient, refs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Create a book; fail unless it succeeded; return the CreateBookSuccess payload."""
    result: dict[str, Any] = (await gql(http, CREATE_BOOK, {"input": book_input(refs, **overrides)}))[
        "createBook"
    ]
    assert result["__typename"] == "CreateBookSuccess", result
    return result


async def update_book(http: httpx.AsyncClient, book_id: str, **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(http, UPDATE_BOOK, {"input": {"id": book_id, **changes}}))[
        "updateBook"
    ]
    return result


async def settled_book_count(http: httpx.AsyncClient) -> int:
    """Count books once the read model has applied every write made so far (a probe write marks it)."""
    probe = (await gql(http, PROBE, {"name": f"probe {uuid.uuid4().hex[:12]}"}))["createPublisher"]
    data = await gql(http, BOOK_COUNT, headers={"Bookworm-Position": probe["position"]})
    count: int = data["books"]["totalCount"]
    return count


async def history_length(http: httpx.AsyncClient, stream_id: str) -> int:
    return len((await gql(http, HISTORY, {"id": stream_id}))["streamHistory"])
