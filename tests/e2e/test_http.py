"""HTTP behaviour: GraphQL-over-HTTP media types and methods, Bookworm-Position, GraphiQL, health."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.operations import book_input, create_book

pytestmark = pytest.mark.e2e

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def test_graphql_response_media_type_on_success(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ categories { id } }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "categories" in response.json()["data"]


async def test_get_queries_and_refuses_mutations(http: httpx.AsyncClient) -> None:
    query = await http.get("/graphql", params={"query": "{ publishers { id } }"})
    mutation = await http.get(
        "/graphql", params={"query": 'mutation { createAuthor(input: {name: "Via GET"}) { __typename } }'}
    )

    assert query.status_code == 200 and "publishers" in query.json()["data"]
    assert mutation.status_code == 405


async def test_graphiql_in_a_browser(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_bookworm_position_header_reads_your_writes(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    query = """mutation($input: CreateBookInput!) { createBook(input: $input) {
      ... on CreateBookSuccess { bookId position } } }"""
    created = (
        await http.post("/graphql", json={"query": query, "variables": {"input": book_input(refs)}})
    ).json()
    payload = created["data"]["createBook"]

    response = await http.post(
        "/graphql",
        json={"query": "query($id: ID!) { book(id: $id) { id } }", "variables": {"id": payload["bookId"]}},
        headers={"Bookworm-Position": payload["position"]},
    )

    assert response.json()["data"]["book"] == {"id": payload["bookId"]}


async def test_malformed_bookworm_position_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ categories { id } }"}, headers={"Bookworm-Position": "yesterday"}
    )

    assert response.status_code == 400
    assert "Bookworm-Position" in response.json()["errors"][0]["message"]


async def test_health_and_readiness(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    await create_book(http, refs)
    health = await http.get("/healthz")
    ready = await http.get("/readyz")

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
