"""Bad variables through the real server: graphql-core's own errors (message, location, extensions, order),
computed here by graphql-core's executor from the same schema; nothing changes. Good variables of every
shape the plan has a short path for are answered (app/schema/variables.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import parse
from graphql.execution import Executor

from app.schema import build_schema
from tests.e2e.clients import gql
from tests.e2e.operations import CREATE_BOOK, book_input, settled_book_count

pytestmark = pytest.mark.e2e

GRAPHQL_RESPONSE = "application/graphql-response+json"
FILTERED = (
    "query($filter: BookFilter, $first: Int = 3) { books(filter: $filter, first: $first) { totalCount } }"
)


def graphql_cores_errors(query: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
    errors = Executor.build(build_schema()._schema, parse(query), raw_variable_values=variables)
    assert isinstance(errors, list), "graphql-core accepts these variables"
    return [error.formatted for error in errors]


# Each case: the changes to a good CreateBookInput (a value of None removes the key), or the whole input.
BAD_BOOKS: list[Any] = [
    pytest.param({"name": None}, id="missing-non-null-field"),
    pytest.param({"name": 5}, id="wrong-type"),
    pytest.param({"price": "1e9"}, id="custom-scalar-refuses"),
    pytest.param({"priceSale": True}, id="nullable-custom-scalar-wrong-type"),
    pytest.param({"authorIds": [None]}, id="null-list-item"),
    pytest.param({"authorIds": {"id": 1}}, id="object-for-a-list"),
    pytest.param({"categoryId": 2.5}, id="float-for-an-id"),
    pytest.param({"isbn": "978-0"}, id="unknown-input-field"),
    pytest.param({"name": 5, "price": "x", "nope": 1}, id="several-at-once"),
]


@pytest.mark.parametrize("changes", BAD_BOOKS)
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_bad_book_variables_answer_graphql_cores_errors(
    http: httpx.AsyncClient, refs: dict[str, Any], changes: dict[str, Any], accept: str
) -> None:
    before = await settled_book_count(http)
    book = book_input(refs)
    for name, value in changes.items():
        if value is None:
            del book[name]
        else:
            book[name] = value
    variables = {"input": book}

    response = await http.post(
        "/graphql", json={"query": CREATE_BOOK, "variables": variables}, headers={"Accept": accept}
    )

    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE else 200)
    body = response.json()
    assert "data" not in body
    assert body["errors"] == graphql_cores_errors(CREATE_BOOK, variables)
    assert await settled_book_count(http) == before


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param(CREATE_BOOK, {}, id="absent-non-null-variable"),
        pytest.param(CREATE_BOOK, {"input": None}, id="null-non-null-variable"),
        pytest.param(CREATE_BOOK, {"input": "a book"}, id="string-for-an-input"),
        pytest.param(CREATE_BOOK, {"input": [{"name": "A"}]}, id="list-for-an-input"),
        pytest.param(FILTERED, {"filter": {"minPrice": 5, "status": "GONE"}}, id="unknown-enum-value"),
        pytest.param(FILTERED, {"filter": {"minPrice": "1.5"}, "first": "3"}, id="string-for-an-int"),
        pytest.param(FILTERED, {"filter": {"minPrice": "1.5"}, "first": 2.5}, id="float-for-an-int"),
        pytest.param(
            FILTERED, {"filter": {"search": "x" * 3}, "first": None}, id="unknown-field-beside-a-null"
        ),
    ],
)
async def test_a_bad_variable_answers_graphql_cores_errors(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any]
) -> None:
    response = await http.post("/graphql", json={"query": query, "variables": variables})

    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert body["errors"] == graphql_cores_errors(query, variables)


async def test_good_variables_of_every_shape_are_answered(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    # An ID for a list of IDs is a list of one; an integer is an ID; a left-out nullable field is null; an
    # absent variable takes its default; an explicit null stands.
    book = book_input(refs, authorIds=refs["authorId"], priceSale=None, price=12)
    del book["description"]
    created = (await gql(http, CREATE_BOOK, {"input": book}))["createBook"]
    assert created["__typename"] == "CreateBookSuccess", created
    assert created["book"]["price"] == "12.00" and created["book"]["priceSale"] is None
    assert created["book"]["description"] is None
    assert [author["id"] for author in created["book"]["authors"]] == [refs["authorId"]]

    counted = await gql(http, FILTERED, {"filter": {"minPrice": "0", "status": "IN_STOCK"}})
    assert counted["books"]["totalCount"] >= 0
    assert (await gql(http, FILTERED, {"filter": None, "first": None}))["books"]["totalCount"] >= 1
