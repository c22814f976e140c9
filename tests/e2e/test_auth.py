"""Signing in: bearer tokens over HTTP and websockets, and who may change the catalog."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.identity.tokens import issue
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, WAIT, Subscription, bearer, gql
from tests.e2e.conftest import CREATE_AUTHOR, JWT_SECRET, MakeToken
from tests.e2e.operations import HISTORY, create_book, history_length, update_book

pytestmark = pytest.mark.e2e

BOOKS = "{ books(first: 5) { totalCount edges { node { id name } } } }"
CATALOG_CHANGED = "subscription { catalogChanged { kind entity entityId } }"
HISTORY_TYPES = "query($id: ID!) { streamHistory(streamId: $id) { type } }"
CREATE_AUTHOR_RESULT = """
mutation($name: String!) { createAuthor(input: {name: $name}) {
  __typename ... on UserError { message code } ... on CreateAuthorSuccess { authorId } } }"""


def expired_token() -> str:
    return issue(JWT_SECRET, subject="alice", ttl=60, now=time.time() - 3600)


def forged_token() -> str:
    return issue("not-the-server-secret", subject="alice", roles=["admin"])


@pytest.fixture
def callers(anon_http: httpx.AsyncClient, alice_http: httpx.AsyncClient) -> dict[str, httpx.AsyncClient]:
    """The callers who may read the catalog but not change it."""
    return {"anonymous": anon_http, "customer": alice_http}


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    return response


async def test_anonymous_reads_the_catalog(anon_http: httpx.AsyncClient, refs: dict[str, Any]) -> None:
    data = await gql(anon_http, BOOKS)
    assert data["books"]["totalCount"] >= 0


@pytest.mark.parametrize("who", ["anonymous", "customer"])
async def test_only_an_admin_changes_the_catalog(
    who: str, callers: dict[str, httpx.AsyncClient], http: httpx.AsyncClient
) -> None:
    client = callers[who]
    name = f"Refused author {uuid.uuid4().hex[:8]}"

    refused = (await gql(client, CREATE_AUTHOR_RESULT, {"name": name}))["createAuthor"]

    assert refused["__typename"] == "Forbidden"
    assert refused["code"] == "FORBIDDEN"
    # Nothing was written: not even the name's reservation, so the admin can take the name.
    created = (await gql(http, CREATE_AUTHOR_RESULT, {"name": name}))["createAuthor"]
    assert created["__typename"] == "CreateAuthorSuccess"


async def test_a_customer_cannot_change_a_book(
    alice_http: httpx.AsyncClient, http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = await create_book(http, refs, name="Guarded by the admin")

    refused = await update_book(alice_http, book["bookId"], price="1.00")

    assert refused["__typename"] == "Forbidden"
    assert await history_length(http, book["bookId"]) == 1


async def test_an_admin_changes_the_catalog(http: httpx.AsyncClient) -> None:
    name = f"Admin's author {uuid.uuid4().hex[:8]}"
    created = (await gql(http, CREATE_AUTHOR, {"name": name}))["createAuthor"]
    assert created["__typename"] == "CreateAuthorSuccess"


@pytest.mark.parametrize("who", ["anonymous", "customer"])
async def test_stream_history_is_for_admins(
    who: str, callers: dict[str, httpx.AsyncClient], http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    client = callers[who]

    body = (await post(client, HISTORY, {"id": refs["authorId"]})).json()

    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["streamHistory"]
    assert await history_length(http, refs["authorId"]) >= 1


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (expired_token, "expired"),
        (forged_token, "signature"),
        (lambda: "not.a.jwt", "malformed"),
    ],
)
async def test_a_bad_token_is_401(server: str, token: Any, reason: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers=bearer(token()), timeout=WAIT) as client:
        response = await post(client, BOOKS)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert reason in error["message"]
    assert "Traceback" not in response.text and "data" not in response.json()


async def test_a_non_bearer_authorization_is_401(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=WAIT) as client:
        response = await client.post(
            "/graphql", json={"query": BOOKS}, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"}
        )

    assert response.status_code == 401
    assert "Bearer" in response.json()["errors"][0]["message"]


async def test_transport_ws_refuses_a_bad_token(ws_url: str) -> None:
    async with connect(ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], open_timeout=WAIT) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": bearer(forged_token())}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()

    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_legacy_ws_refuses_a_bad_token(ws_url: str) -> None:
    async with connect(ws_url, subprotocols=[Subprotocol(LEGACY_WS)], open_timeout=WAIT) as ws:
        payload = {"authorization": f"Bearer {expired_token()}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        message = json.loads(await ws.recv())

    assert message["type"] == "connection_error"
    assert message["payload"]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "expired" in message["payload"]["message"]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_signed_in_subscription_gets_changes(
    protocol: str, ws_url: str, make_token: MakeToken, http: httpx.AsyncClient
) -> None:
    async with Subscription(protocol, ws_url, CATALOG_CHANGED, token=make_token("alice")) as subscription:
        author = await gql(http, CREATE_AUTHOR, {"name": f"Seen by Alice {uuid.uuid4().hex[:8]}"})
        change = (await subscription.next_data())["catalogChanged"]

    assert change == {"kind": "CREATED", "entity": "Author", "entityId": author["createAuthor"]["authorId"]}


@pytest.mark.parametrize(("roles", "allowed"), [(("admin",), True), (("customer",), False)])
async def test_a_websocket_acts_as_its_token(
    roles: tuple[str, ...], allowed: bool, ws_url: str, make_token: MakeToken, refs: dict[str, Any]
) -> None:
    variables = {"id": refs["authorId"]}
    token = make_token("carol", roles=roles)
    async with Subscription(TRANSPORT_WS, ws_url, HISTORY_TYPES, variables, token=token) as operation:
        message = await operation.next_message()

    if allowed:
        assert message["payload"]["data"]["streamHistory"][0]["type"] == "AuthorCreated"
    else:
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_websocket_may_sign_in_on_the_upgrade_request(
    ws_url: str, make_token: MakeToken, refs: dict[str, Any]
) -> None:
    headers = bearer(make_token("root", roles=("admin",)))
    async with connect(
        ws_url, subprotocols=[Subprotocol(TRANSPORT_WS)], additional_headers=headers, open_timeout=WAIT
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        operation = {"query": HISTORY_TYPES, "variables": {"id": refs["authorId"]}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": operation}))
        message = json.loads(await ws.recv())

    assert message["type"] == "next", message
    assert message["payload"]["data"]["streamHistory"][0]["type"] == "AuthorCreated"
