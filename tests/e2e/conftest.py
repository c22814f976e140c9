"""A real `bookworm serve` process on a free port, with its own database and Redis prefix."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.settings import Settings
from tests.e2e.clients import bearer, gql
from tests.e2e.mailbox import Mailbox
from tests.e2e.process import bookworm_command, free_port, stop, wait_ready
from tests.faults.cluster import SMALL_POOLS, Cluster

JWT_SECRET = "e2e-secret"
WORKER_READY_LIMIT = 90.0  # seconds for a worker run apart to answer /metrics
MakeToken = Callable[..., str]


@pytest.fixture(scope="session")
def e2e_settings(make_settings: Callable[[], Settings]) -> Settings:
    """Settings of a database and Redis prefix used by the server process alone."""
    return make_settings()


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 that keeps every message the bookworm server sends."""
    with Mailbox.serving("127.0.0.1", free_port()) as box:
        yield box


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file that the `server` process writes its output (and any traceback) to."""
    return tmp_path_factory.mktemp("server") / "serve.log"


@pytest.fixture(scope="session")
def server(
    e2e_settings: Settings, mailbox: Mailbox, server_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
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
        "BOOKWORM_JWT_SECRET": JWT_SECRET,
        "BOOKWORM_SMTP_HOST": mailbox.host,
        "BOOKWORM_SMTP_PORT": str(mailbox.port),
        # The suite sends hundreds of requests a second as a few users; budgets are tested in tests/abuse/.
        **{
            f"BOOKWORM_{name}": "1000000000"
            for name in ("BUDGET_CAPACITY", "BUDGET_REFILL", "WRITE_BUDGET_CAPACITY", "WRITE_BUDGET_REFILL")
        },
        # A caller's concurrent requests all run, so that races between them happen (fairness: tests/abuse/).
        "BOOKWORM_CLIENT_REQUESTS_RUNNING": "64",
        # This server lives through the whole run, beside the fault scenarios' own: small pools keep the
        # run within a stock PostgreSQL's 100 connections.
        **SMALL_POOLS,
    }
    log = server_log
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
        stop(process)


@pytest.fixture
async def worker(make_settings: Callable[[], Settings], tmp_path: Path) -> AsyncIterator[str]:
    """A worker run apart with --metrics-port, once its /metrics answers; yields that port's URL."""
    cluster = Cluster(make_settings(), tmp_path)
    port = free_port()
    proc = cluster.worker(options=["--metrics-port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            deadline = asyncio.get_running_loop().time() + WORKER_READY_LIMIT
            while True:
                assert proc.alive, proc.log_tail()
                try:
                    if (await http.get("/metrics")).status_code == 200:
                        break
                except httpx.TransportError:
                    assert asyncio.get_running_loop().time() < deadline, proc.log_tail()
                await asyncio.sleep(0.2)  # polling another process's port: there is no event to wait on
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ws_url(server: str) -> str:
    return server.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="session")
def make_token() -> MakeToken:
    """Return a function that signs a token the e2e server accepts (a customer's, by default)."""

    def make(
        sub: str, roles: tuple[str, ...] = (CUSTOMER,), name: str | None = None, email: str | None = None
    ) -> str:
        return issue(JWT_SECRET, subject=sub, name=name, email=email, roles=roles)

    return make


@pytest.fixture(scope="session")
async def http(server: str, make_token: MakeToken) -> AsyncIterator[httpx.AsyncClient]:
    """A client acting as an admin: it may change the catalog."""
    token = make_token("admin", roles=(ADMIN, CUSTOMER), name="Admin", email="admin@example.com")
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        yield client


@pytest.fixture(scope="session")
async def anon_http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no token."""
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def alice_http(server: str, make_token: MakeToken) -> AsyncIterator[httpx.AsyncClient]:
    """Alice, a customer (alice@example.com)."""
    token = make_token("alice", name="Alice", email="alice@example.com")
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
        yield client


@pytest.fixture(scope="session")
async def bob_http(server: str, make_token: MakeToken) -> AsyncIterator[httpx.AsyncClient]:
    """Bob, a customer (bob@example.com)."""
    token = make_token("bob", name="Bob", email="bob@example.com")
    async with httpx.AsyncClient(base_url=server, timeout=30, headers=bearer(token)) as client:
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
