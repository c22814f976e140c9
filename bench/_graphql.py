"""The GraphQL operations the benchmarks send, and the helpers that create what they need."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

CREATE = """mutation($name: String!) { %s(input: {name: $name}) { __typename ... on %s { %s } } }"""
CREATE_BOOK = """
mutation($input: CreateBookInput!) {
  createBook(input: $input) { __typename ... on CreateBookSuccess { bookId position } }
}"""
# The same mutation, also asking for the book: the answer waits until the read model has it.
CREATE_BOOK_READ_YOUR_WRITES = """
mutation($input: CreateBookInput!) {
  createBook(input: $input) {
    __typename ... on CreateBookSuccess { bookId position book { id name version } }
  }
}"""
BOOK = """
query($id: ID!) {
  book(id: $id) {
    id name description price priceSale status averageRating totalReviews version createdAt updatedAt
    category { id name bookCount } publisher { id name } authors { id name }
  }
}"""
BOOKS = """
query($search: String, $orderBy: BookOrderBy, $after: String) {
  books(first: 20, search: $search, orderBy: $orderBy, after: $after) {
    totalCount
    edges { cursor node { id name price priceSale averageRating category { name } authors { name } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
BOOK_IDS = """
query($after: String) {
  books(first: 50, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
}"""
SUBSCRIBE_CATALOG = "subscription { catalogChanged { kind position entity entityId } }"


@dataclass(frozen=True)
class Refs:
    """An author, a category and a publisher that new books can point at."""

    author: str
    category: str
    publisher: str

    def book_input(self, name: str) -> dict[str, Any]:
        """Return a valid CreateBookInput named `name`."""
        return {
            "name": name,
            "price": "12.50",
            "categoryId": self.category,
            "publisherId": self.publisher,
            "authorIds": [self.author],
        }


async def create_named(client: httpx.AsyncClient, field: str, success: str, id_field: str, name: str) -> str:
    """Run a create<Noun>(input: {name}) mutation; return the new id."""
    response = await client.post(
        "/graphql", json={"query": CREATE % (field, success, id_field), "variables": {"name": name}}
    )
    payload = response.json()["data"][field]
    assert payload["__typename"] == success, payload
    return str(payload[id_field])


async def create_refs(client: httpx.AsyncClient) -> Refs:
    """Create a fresh author, category and publisher (unique names, so reruns do not clash)."""
    suffix = os.urandom(3).hex()
    return Refs(
        author=await create_named(
            client, "createAuthor", "CreateAuthorSuccess", "authorId", f"Bench Author {suffix}"
        ),
        category=await create_named(
            client, "createCategory", "CreateCategorySuccess", "categoryId", f"Bench {suffix}"
        ),
        publisher=await create_named(
            client, "createPublisher", "CreatePublisherSuccess", "publisherId", f"Bench {suffix}"
        ),
    )


async def book_ids(client: httpx.AsyncClient, limit: int) -> list[str]:
    """Return the ids of up to `limit` books, in the listing's default order."""
    ids: list[str] = []
    after: str | None = None
    while len(ids) < limit:
        response = await client.post("/graphql", json={"query": BOOK_IDS, "variables": {"after": after}})
        page = response.json()["data"]["books"]
        ids.extend(edge["node"]["id"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return ids[:limit]


def failure(response: httpx.Response, field: str | None = None, success: str | None = None) -> str | None:
    """Name what went wrong with a GraphQL answer (HTTP status, error code, error union); None if fine."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    body = response.json()
    errors = body.get("errors")
    if errors:
        code = (errors[0].get("extensions") or {}).get("code")
        return str(code or errors[0].get("message", "error"))[:60]
    if field is not None and success is not None:
        typename = str(body["data"][field]["__typename"])
        if typename != success:
            return typename
    return None
