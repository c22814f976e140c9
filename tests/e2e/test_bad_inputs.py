"""Bad inputs give typed errors (or the status codes the spec prescribes) and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.ids import new_id
from tests.e2e.clients import gql
from tests.e2e.operations import (
    CREATE_BOOK,
    book_input,
    create_book,
    history_length,
    settled_book_count,
    update_book,
)

pytestmark = pytest.mark.e2e

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("overrides", "typename", "field"),
    [
        ({"price": "-1"}, "ValidationFailed", "price"),
        ({"price": "1.234"}, "ValidationFailed", "price"),
        ({"price": "10.00", "priceSale": "12.00"}, "ValidationFailed", "priceSale"),
        ({"name": "x" * 101}, "ValidationFailed", "name"),
        ({"description": "x" * 2001}, "ValidationFailed", "description"),
        ({"categoryId": "not-an-id"}, "ValidationFailed", "categoryId"),
        ({"authorIds": ["nope"]}, "ValidationFailed", "authorIds[0]"),
        ({"idempotencyKey": ""}, "ValidationFailed", "idempotencyKey"),
        ({"idempotencyKey": "k" * 201}, "ValidationFailed", "idempotencyKey"),
        ({"categoryId": new_id()}, "NotFound", None),
        ({"authorIds": [new_id()]}, "NotFound", None),
    ],
)
async def test_invalid_book_is_refused_and_nothing_changes(
    http: httpx.AsyncClient, refs: dict[str, Any], overrides: dict[str, Any], typename: str, field: str | None
) -> None:
    before = await settled_book_count(http)

    result = (await gql(http, CREATE_BOOK, {"input": book_input(refs, **overrides)}))["createBook"]

    assert result["__typename"] == typename, result
    assert result["message"] and result["code"]
    if field is not None:
        assert field in [f["field"] for f in result["fields"]], result
    assert await settled_book_count(http) == before


async def test_invalid_update_changes_nothing(http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    created = await create_book(http, refs)

    for changes in ({"price": "0"}, {"priceSale": "99.00"}, {"name": None}, {"categoryId": "bad"}):
        result = await update_book(http, created["bookId"], **changes)
        assert result["__typename"] == "ValidationFailed", (changes, result)
    unknown = await update_book(http, new_id(), name="Nobody")
    assert unknown["__typename"] == "NotFound", unknown

    assert await history_length(http, created["bookId"]) == 1


async def test_malformed_id_in_a_query_names_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": '{ book(id: "42") { id } }'})

    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"book": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED"
    assert [f["field"] for f in error["extensions"]["fields"]] == ["id"]


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_malformed_graphql(http: httpx.AsyncClient, accept: str) -> None:
    response = await http.post("/graphql", json={"query": "{ book(id: "}, headers={"Accept": accept})

    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE else 200)
    assert response.headers["content-type"].startswith(accept)
    body = response.json()
    assert "data" not in body
    assert "Syntax Error" in body["errors"][0]["message"]


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_wrong_variable_type(http: httpx.AsyncClient, refs: dict[str, Any], accept: str) -> None:
    before = await settled_book_count(http)
    variables = {"input": book_input(refs, price=True)}

    response = await http.post(
        "/graphql", json={"query": CREATE_BOOK, "variables": variables}, headers={"Accept": accept}
    )

    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE else 200)
    body = response.json()
    assert "data" not in body
    assert "price" in body["errors"][0]["message"]
    assert await settled_book_count(http) == before


async def test_unknown_field_is_a_validation_error(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ books { nope } }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "nope" in response.json()["errors"][0]["message"]


async def test_too_deep_query_is_refused(http: httpx.AsyncClient) -> None:
    level = "books { edges { node { authors { %s } } } }"
    nested = level % (level % (level % (level % "id")))

    response = await http.post(
        "/graphql", json={"query": "{ " + nested + " }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )

    assert response.status_code == 400
    assert "depth" in response.json()["errors"][0]["message"]


async def test_oversized_body_is_413_and_changes_nothing(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    before = await settled_book_count(http)
    given = book_input(refs, description="x" * 1_100_000)

    response = await http.post("/graphql", json={"query": CREATE_BOOK, "variables": {"input": given}})

    assert response.status_code == 413
    assert response.json()["errors"][0]["message"]
    assert await settled_book_count(http) == before


async def test_unparseable_json_is_400(http: httpx.AsyncClient) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await http.post(
            "/graphql", content=b"{not json", headers={"Content-Type": "application/json", "Accept": accept}
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"]
