"""Which requests the view's lean path takes: only a query or mutation parsed before, posted as plain JSON."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request
from starlette.types import Message

from app.admission.parsing import parse_limited
from app.schema.lean import lean_request

TOKENS = 1_000
QUERY = "query($id: ID!) { book(id: $id) { id } }"
MUTATION = 'mutation { createAuthor(input: {name: "X"}) { __typename } }'
SUBSCRIPTION = "subscription { bookChanged { id } }"
BOTH = 'query A { __typename } mutation B { createAuthor(input: {name: "X"}) { __typename } }'
WITH_SUBSCRIPTION = "query A { __typename } subscription B { bookChanged { id } }"
JSON = "application/json"


def _request(
    body: bytes, *, method: str = "POST", content_type: str = JSON, accept: str | None = None
) -> Request:
    headers = [(b"content-type", content_type.encode())]
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    scope = {"type": "http", "method": method, "path": "/graphql", "query_string": b"", "headers": headers}
    sent = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return sent.pop(0)

    return Request(scope, receive=receive)


def _body(**members: object) -> bytes:
    return json.dumps(members).encode()


@pytest.fixture(autouse=True)
def parsed() -> None:
    for text in (QUERY, MUTATION, SUBSCRIPTION, BOTH, WITH_SUBSCRIPTION):
        parse_limited(text, TOKENS)


async def test_a_query_parsed_before_posted_as_json_is_lean() -> None:
    found = await lean_request(
        _request(_body(query=QUERY, variables={"id": "1"}, operationName=None)), TOKENS
    )
    assert found is not None
    assert (found.query, found.variables, found.operation_name, found.extensions) == (
        QUERY,
        {"id": "1"},
        None,
        None,
    )


async def test_a_query_never_parsed_is_not_lean() -> None:
    assert await lean_request(_request(_body(query="{ __typename }")), TOKENS) is None


@pytest.mark.parametrize("text", [MUTATION, BOTH])
async def test_a_mutation_parsed_before_posted_as_json_is_lean(text: str) -> None:
    found = await lean_request(_request(_body(query=text, operationName="B")), TOKENS)
    assert found is not None
    assert (found.query, found.operation_name) == (text, "B")


@pytest.mark.parametrize("text", [SUBSCRIPTION, WITH_SUBSCRIPTION])
async def test_a_document_with_a_subscription_is_never_lean(text: str) -> None:
    assert await lean_request(_request(_body(query=text, operationName="A")), TOKENS) is None


@pytest.mark.parametrize(
    "request_",
    [
        _request(b"", method="GET"),
        _request(_body(query=QUERY), content_type="text/plain"),
        _request(_body(query=QUERY), content_type="multipart/form-data"),
        _request(_body(query=QUERY), accept="text/event-stream"),
        _request(_body(query=QUERY), accept="application/json, multipart/mixed;subscriptionSpec=1.0"),
        _request(json.dumps([{"query": QUERY}]).encode()),
        _request(b"{not json"),
        _request(_body(query=5)),
        _request(_body(query=QUERY, variables=[1])),
        _request(_body(query=QUERY, extensions="x")),
        _request(_body(query=QUERY, operationName=5)),
    ],
    ids=[
        "get",
        "text",
        "multipart",
        "sse",
        "multipart-accept",
        "batch",
        "bad-json",
        "query-number",
        "variables-list",
        "extensions-text",
        "name-number",
    ],
)
async def test_everything_else_takes_strawberrys_path(request_: Request) -> None:
    assert await lean_request(request_, TOKENS) is None
