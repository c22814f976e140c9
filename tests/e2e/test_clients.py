"""The clients people use, against a real server: Python `gql`, and in Node `graphql-ws` and Apollo Client.

The Node tests install pinned packages with npm once per session; they skip when `node` or `npm` is missing
or the registry cannot be reached. Each subscription resumes `after:` a position handed out before it
starts, so the change it waits for is replayed whether or not it was live yet: no timing races.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from app.identity import ADMIN, CUSTOMER
from tests.e2e.clients import TRANSPORT_WS, WAIT, bearer
from tests.e2e.conftest import MakeToken

pytestmark = pytest.mark.e2e

NPM_PACKAGES = ("graphql@16.15.0", "graphql-ws@6.4.2", "ws@8.23.1", "@apollo/client@4.3.8", "rxjs@7.8.2")
NPM_TIMEOUT = 120.0  # seconds
NODE_TIMEOUT = 30.0  # seconds: the scripts give up by themselves after 20
SCRIPTS = Path(__file__).parent / "clients_js"

CREATE_AUTHOR = """mutation($name: String!) { createAuthor(input: {name: $name}) {
  __typename ... on CreateAuthorSuccess { authorId position author { id name } } } }"""
AUTHOR = "query($id: ID!) { author(id: $id) { id name } }"
CATALOG_CHANGED = """subscription($after: String) {
  catalogChanged(after: $after) { kind position entity entityId } }"""


@pytest.fixture(scope="module")
def admin_token(make_token: MakeToken) -> str:
    return make_token("admin", roles=(ADMIN, CUSTOMER), name="Admin", email="admin@example.com")


def http_client(server: str, token: str) -> Client:
    """A gql client over HTTP that sends `token`."""
    transport = HTTPXAsyncTransport(url=f"{server}/graphql", headers=bearer(token), timeout=WAIT)
    return Client(transport=transport, execute_timeout=WAIT)


def ws_client(ws_url: str, token: str) -> Client:
    """A gql client over graphql-transport-ws that signs in with `token` in connection_init."""
    transport = WebsocketsTransport(url=ws_url, subprotocols=[TRANSPORT_WS], init_payload=bearer(token))
    return Client(transport=transport, execute_timeout=WAIT)


async def create_author(server: str, token: str, name: str) -> dict[str, Any]:
    """Create an author with gql over HTTP; return the success payload."""
    async with http_client(server, token) as session:
        data = await session.execute(GraphQLRequest(CREATE_AUTHOR, variable_values={"name": name}))
    author: dict[str, Any] = data["createAuthor"]
    assert author["__typename"] == "CreateAuthorSuccess", author
    return author


async def test_gql_over_http_runs_a_mutation_and_a_query(server: str, admin_token: str) -> None:
    created = await create_author(server, admin_token, "Written by gql")
    assert created["author"] == {"id": created["authorId"], "name": "Written by gql"}

    async with http_client(server, admin_token) as session:
        request = GraphQLRequest(AUTHOR, variable_values={"id": created["authorId"]})
        headers = {"Bookworm-Position": created["position"]}
        data = await session.execute(request, extra_args={"headers": headers})
    assert data["author"] == {"id": created["authorId"], "name": "Written by gql"}


async def test_gql_over_websockets_receives_a_change_after_a_position(
    server: str, ws_url: str, admin_token: str
) -> None:
    before = await create_author(server, admin_token, "Before the gql subscription")
    created = await create_author(server, admin_token, "Seen by the gql subscription")

    async with ws_client(ws_url, admin_token) as session:
        request = GraphQLRequest(CATALOG_CHANGED, variable_values={"after": before["position"]})
        async for data in session.subscribe(request):
            change = data["catalogChanged"]
            if change["entityId"] == created["authorId"]:
                break
    assert change == {
        "kind": "CREATED",
        "position": created["position"],
        "entity": "Author",
        "entityId": created["authorId"],
    }


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the Node scripts and their pinned packages, installed once per session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the JavaScript clients")
    directory = tmp_path_factory.mktemp("clients_js")
    (directory / "package.json").write_text('{"type": "module", "private": true}\n')
    for script in SCRIPTS.glob("*.mjs"):
        shutil.copy(script, directory / script.name)
    try:
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", *NPM_PACKAGES],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install took more than {NPM_TIMEOUT:.0f} s (is the registry reachable?)")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-800:]
        pytest.skip(f"npm install failed (is the registry reachable?): {tail}")
    return directory


def run_node(directory: Path, script: str, *args: str) -> Any:
    """Run a script of clients_js/ with node; return the JSON it prints."""
    result = subprocess.run(
        ["node", script, *args], cwd=directory, capture_output=True, text=True, timeout=NODE_TIMEOUT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


async def test_graphql_ws_in_node_receives_a_change_after_a_position(
    server: str, ws_url: str, admin_token: str, node_modules: Path
) -> None:
    before = await create_author(server, admin_token, "Before the graphql-ws subscription")
    created = await create_author(server, admin_token, "Seen by graphql-ws")

    change = run_node(
        node_modules, "subscribe.mjs", ws_url, admin_token, before["position"], created["authorId"]
    )
    assert change == {
        "kind": "CREATED",
        "position": created["position"],
        "entity": "Author",
        "entityId": created["authorId"],
    }


async def test_apollo_split_link_queries_over_http_and_subscribes_over_websockets(
    server: str, ws_url: str, admin_token: str, node_modules: Path
) -> None:
    before = await create_author(server, admin_token, "Before the Apollo subscription")
    created = await create_author(server, admin_token, "Seen by Apollo")

    answer = run_node(
        node_modules,
        "apollo.mjs",
        f"{server}/graphql",
        ws_url,
        admin_token,
        before["position"],
        created["authorId"],
    )
    assert answer["author"] == {"__typename": "Author", "id": created["authorId"], "name": "Seen by Apollo"}
    assert answer["change"] == {
        "__typename": "CatalogChange",
        "kind": "CREATED",
        "position": created["position"],
        "entity": "Author",
        "entityId": created["authorId"],
    }
