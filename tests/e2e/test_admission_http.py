"""Admission on the HTTP side, through a real server with tight settings: typed answers to bodies that
are not GraphQL requests, a response-size cap, a fast 503 past the requests in flight, each client's
fair share, and the production switches (GraphiQL off, no anonymous introspection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from app.settings import Settings
from tests.e2e.clients import bearer
from tests.faults.cluster import Cluster, Proc, admin_token

pytestmark = pytest.mark.e2e

LIMITS = {
    "BOOKWORM_GRAPHIQL": "false",
    "BOOKWORM_ANONYMOUS_INTROSPECTION": "false",
    "BOOKWORM_MAX_RESPONSE_BYTES": "3000",
    "BOOKWORM_MAX_REQUESTS_IN_FLIGHT": "3",
    "BOOKWORM_CLIENT_REQUESTS_RUNNING": "1",
    "BOOKWORM_CLIENT_REQUESTS_WAITING": "1",
}
SCHEMA_TYPES = "{ __schema { types { name description } } }"


@pytest.fixture(scope="module")
def strict(make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("strict"))
    try:
        yield cluster.api("strict", **LIMITS)
    finally:
        cluster.stop()


@pytest.fixture
async def http(strict: Proc) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=strict.url, timeout=30) as client:
        yield client


def code(response: httpx.Response) -> str:
    codes = [error["extensions"]["code"] for error in response.json()["errors"]]
    assert len(codes) == 1, response.text
    return str(codes[0])


@pytest.mark.parametrize("body", ['"text"', "null", "123", "true", "[" * 50_000 + "]" * 50_000, "{not json"])
async def test_a_body_that_is_not_a_request_object_is_a_typed_400(http: httpx.AsyncClient, body: str) -> None:
    response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert code(response) == "BAD_REQUEST"


async def test_a_subscription_over_plain_http_is_refused_with_a_code(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": "subscription { catalogChanged { kind } }"})
    assert response.status_code == 400
    assert code(response) == "OPERATION_NOT_SUPPORTED"
    assert "websocket" in response.json()["errors"][0]["message"]


async def test_every_response_says_nosniff(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/healthz"),
        await http.post("/graphql", json={"query": "{ __typename }"}),
        await http.post("/graphql", content="null", headers={"content-type": "application/json"}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_graphiql_can_be_turned_off(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_graphiql_is_sent_with_a_strict_content_security_policy(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert "'sha256-" in policy["script-src"] and "unsafe-inline" not in policy["script-src"]
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_anonymous_introspection_can_be_refused(http: httpx.AsyncClient) -> None:
    refused = await http.post("/graphql", json={"query": '{ __type(name: "Book") { name } }'})
    assert code(refused) == "INTROSPECTION_DISABLED"
    assert "data" not in refused.json() or refused.json()["data"] is None
    typename = await http.post("/graphql", json={"query": "{ __typename }"})
    assert typename.json()["data"] == {"__typename": "Query"}
    signed_in = await http.post(
        "/graphql", json={"query": '{ __type(name: "Book") { name } }'}, headers=bearer(admin_token())
    )
    assert signed_in.json()["data"] == {"__type": {"name": "Book"}}


async def test_a_response_over_the_cap_is_replaced_by_a_typed_error(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": SCHEMA_TYPES}, headers=bearer(admin_token()))
    body = response.json()
    assert body["data"] is None
    assert code(response) == "RESPONSE_TOO_LARGE"
    assert body["errors"][0]["extensions"]["maximum"] == 3000
    assert len(response.content) < 3000


async def _slow_body(seconds: float) -> AsyncIterator[bytes]:
    """A request body that takes `seconds` to arrive: its request stays in flight meanwhile."""
    yield b'{"query": '
    await asyncio.sleep(seconds)
    yield b'"{ __typename }"}'


def _from(address: str, strict: Proc) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=strict.url, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address)
    )


async def test_past_the_requests_in_flight_the_answer_is_a_fast_503(strict: Proc) -> None:
    clients = [_from(f"127.0.0.{n}", strict) for n in (61, 62, 63, 64)]
    headers = {"content-type": "application/json"}
    try:
        held = [
            asyncio.create_task(c.post("/graphql", content=_slow_body(2.0), headers=headers))
            for c in clients[:3]
        ]
        await asyncio.sleep(0.5)
        busy = await clients[3].post("/graphql", json={"query": "{ __typename }"})
        alive = await clients[3].get("/healthz")
        answers = await asyncio.gather(*held)
    finally:
        for c in clients:
            await c.aclose()
    assert busy.status_code == 503 and code(busy) == "SERVER_BUSY"
    assert busy.headers["retry-after"] == "1"
    assert alive.status_code == 200  # liveness is never refused
    assert [a.status_code for a in answers] == [200, 200, 200]


async def test_one_client_runs_a_few_requests_at_once_and_queues_a_few_more(strict: Proc) -> None:
    headers = {"content-type": "application/json"}
    async with _from("127.0.0.71", strict) as greedy, _from("127.0.0.72", strict) as other:
        held = [
            asyncio.create_task(greedy.post("/graphql", content=_slow_body(1.5), headers=headers))
            for _ in range(2)
        ]
        await asyncio.sleep(0.5)
        refused = await greedy.post("/graphql", json={"query": "{ __typename }"})
        served = await other.post("/graphql", json={"query": "{ __typename }"})
        answers = await asyncio.gather(*held)
    assert refused.status_code == 429 and code(refused) == "TOO_MANY_REQUESTS"
    assert refused.headers["retry-after"] == "1"
    assert served.status_code == 200
    assert [a.status_code for a in answers] == [200, 200]
