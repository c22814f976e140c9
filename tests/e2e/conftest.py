"""A real `bookworm serve` process on a free port, with its own database and Redis prefix."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.e2e.clients import gql
from tests.e2e.process import bookworm_command, free_port, wait_ready


@pytest.fixture(scope="session")
def e2e_settings(make_settings: Callable[[], Settings]) -> Settings:
    """Settings of a database and Redis prefix used by the server process alone."""
    return make_settings()


@pytest.fixture(scope="session")
def server(e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `bookworm serve`, wait for /readyz, yield its base URL, and stop it at the end."""
    port = free_port()
    env = {
        **os.environ,
        "BOOKWORM_DATABASE_URL": e2e_settings.database_url or "",
        "BOOKWORM_REDIS_URL": e2e_settings.redis_url or "",
        "BOOKWORM_REDIS_PREFIX": e2e_settings.redis_prefix,
        "BOOKWORM_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "BOOKWORM_LEASE_TTL": str(e2e_settings.lease_ttl),
        "BOOKWORM_RELAY_POLL_INTERVAL": str(e2e_settings.relay_poll_interval),
    }
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*bookworm_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def ws_url(server: str) -> str:
    return server.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="session")
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


CREATE_AUTHOR = """
mutation($name: String!) { createAuthor(input: {name: $name}) {
  __typename ... on CreateAuthorSuccess { authorId position } } }"""
CREATE_CATEGORY = """
mutation($name: String!) { createCategory(input: {name: $name}) {
  __typename ... on CreateCategorySuccess { categoryId position } } }"""
CREATE_PUBLISHER = """
mutation($name: String!) { createPublisher(input: {name: $name}) {
  __typename ... on CreatePublisherSuccess { publisherId position } } }"""


@pytest.fixture(scope="session")
async def refs(http: httpx.AsyncClient) -> dict[str, Any]:
    """One author, category and publisher that books can refer to."""
    author = (await gql(http, CREATE_AUTHOR, {"name": "Ursula K. Le Guin"}))["createAuthor"]
    category = (await gql(http, CREATE_CATEGORY, {"name": "Science Fiction"}))["createCategory"]
    publisher = (await gql(http, CREATE_PUBLISHER, {"name": "Ace Books"}))["createPublisher"]
    return {
        "authorId": author["authorId"],
        "categoryId": category["categoryId"],
        "publisherId": publisher["publisherId"],
    }
