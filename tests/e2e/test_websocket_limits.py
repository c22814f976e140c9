"""Websocket limits through a real server with tight settings: connection caps, a connection_init
deadline, operations per connection, subscriptions per caller, token expiry and message size."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from app.identity.tokens import issue
from app.settings import Settings
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, WAIT, bearer
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.e2e

SECRET = "a-websocket-limits-secret-of-32-bytes-or-more"
PER_IP = 3
TOTAL = 5
OPERATIONS = 2
SUBSCRIPTIONS = 3
MESSAGE_BYTES = 10_000
INIT_TIMEOUT = 0.5
TOKEN_LIFETIME = 3600
LIMITS = {
    "BOOKWORM_MAX_WS_CONNECTIONS_PER_IP": PER_IP,
    "BOOKWORM_MAX_WS_CONNECTIONS": TOTAL,
    "BOOKWORM_MAX_OPERATIONS_PER_CONNECTION": OPERATIONS,
    "BOOKWORM_MAX_SUBSCRIPTIONS_PER_USER": SUBSCRIPTIONS,
    "BOOKWORM_MAX_WS_MESSAGE_BYTES": MESSAGE_BYTES,
    "BOOKWORM_CONNECTION_INIT_TIMEOUT": INIT_TIMEOUT,
    "BOOKWORM_MAX_TOKEN_LIFETIME": TOKEN_LIFETIME,
}
CATALOG_CHANGED = "subscription { catalogChanged { kind entity entityId } }"
BOOKS = "{ books(first: 1) { totalCount } }"
CREATE_AUTHOR = """mutation { createAuthor(input: {name: "Over legacy"}) {
  __typename ... on UserError { code } ... on CreateAuthorSuccess { authorId } } }"""


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if needle in line]


@pytest.fixture(scope="module")
def limited(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A `bookworm serve` (no workers) with tight websocket limits; its log is read by the tests."""
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("limited"))
    limits = {name: str(value) for name, value in LIMITS.items()}
    try:
        api = cluster.api("limited", BOOKWORM_JWT_SECRET=SECRET, BOOKWORM_LOG_LEVEL="INFO", **limits)
        yield Server(api.url, api.log)
    finally:
        cluster.stop()
    assert "Traceback" not in api.log.read_text()


def token(subject: str, ttl: int = 600) -> str:
    return issue(SECRET, subject=subject, ttl=ttl)


@asynccontextmanager
async def socket(
    server: Server, protocol: str = TRANSPORT_WS, source: str = "127.0.0.1", **options: Any
) -> AsyncIterator[ClientConnection]:
    """An open websocket (no connection_init sent) from the local address `source`."""
    async with connect(
        server.ws_url,
        subprotocols=[Subprotocol(protocol)],
        open_timeout=WAIT,
        local_addr=(source, 0),
        **options,
    ) as ws:
        yield ws


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not a keep-alive."""
    while True:
        async with asyncio.timeout(WAIT):
            message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == "ping":
            await send(ws, {"type": "pong"})
        elif message["type"] not in ("ka", "pong"):
            return message


async def init(ws: ClientConnection, token: str | None = None) -> None:
    await send(ws, {"type": "connection_init", "payload": {} if token is None else bearer(token)})
    assert (await receive(ws))["type"] == "connection_ack"


async def start(ws: ClientConnection, op_id: str, query: str, protocol: str = TRANSPORT_WS) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await send(ws, {"id": op_id, "type": kind, "payload": {"query": query}})


async def closed(ws: ClientConnection) -> ConnectionClosed:
    """Wait until the server closes the connection; return how."""
    with pytest.raises(ConnectionClosed) as error:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    return error.value


async def refused(server: Server, source: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as error:
        async with socket(server, source=source, additional_headers=headers):
            pass
    return error.value


def codes(message: dict[str, Any]) -> list[str]:
    payload = message["payload"]
    return [e["extensions"]["code"] for e in (payload if isinstance(payload, list) else [payload])]


async def test_the_connection_over_the_per_address_cap_is_refused_with_429(limited: Server) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(PER_IP):
            await stack.enter_async_context(socket(limited, source="127.0.0.2"))

        refusal = await refused(limited, "127.0.0.2")
        async with socket(limited, source="127.0.0.3") as other:  # another address still gets in
            await init(other)

    assert refusal.response.status_code == 429
    assert refusal.response.headers["retry-after"] == "5"
    body = json.loads(refusal.response.body)
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
    lines = limited.log_lines("websocket refused: over 3 connections from one address")
    assert len(lines) == 1 and "127.0.0.2" in lines[0] and len(lines[0]) < 300


async def test_a_closed_connection_gives_its_place_back(limited: Server) -> None:
    for _ in range(2 * PER_IP):
        async with socket(limited, source="127.0.0.4") as ws:
            await init(ws)


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(limited: Server) -> None:
    async with AsyncExitStack() as stack:
        for number in range(PER_IP):
            headers = {"X-Forwarded-For": f"10.0.0.{number}"}
            await stack.enter_async_context(socket(limited, source="127.0.0.5", additional_headers=headers))

        refusal = await refused(limited, "127.0.0.5", {"X-Forwarded-For": "10.0.0.99"})

    assert refusal.response.status_code == 429


async def test_the_connection_over_the_process_cap_is_refused_with_503(limited: Server) -> None:
    await asyncio.sleep(0.5)  # the earlier tests' connections are released
    async with AsyncExitStack() as stack:
        for number in range(TOTAL):
            await stack.enter_async_context(socket(limited, source=f"127.0.1.{number}"))

        refusal = await refused(limited, "127.0.1.99")

    assert refusal.response.status_code == 503
    assert limited.log_lines("websocket refused: over 5 connections to this process")


async def test_a_flood_of_refusals_writes_a_few_lines(limited: Server) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(PER_IP):
            await stack.enter_async_context(socket(limited, source="127.0.0.6"))
        for _ in range(30):
            await refused(limited, "127.0.0.6")

    per_address = limited.log_lines("websocket refused: over 3 connections from one address")
    handshakes = limited.log_lines('"WebSocket /graphql" 429')
    rejections = limited.log_lines("connection rejected (429")
    assert len(per_address) <= 5 and len(handshakes) <= 5 and len(rejections) <= 5


@pytest.mark.parametrize(("protocol", "source"), [(LEGACY_WS, "127.0.2.1"), (TRANSPORT_WS, "127.0.2.2")])
async def test_a_socket_without_connection_init_is_closed_after_the_timeout(
    limited: Server, protocol: str, source: str
) -> None:
    async with socket(limited, protocol, source=source) as ws:
        began = time.monotonic()
        closing = await closed(ws)

    assert closing.rcvd is not None and closing.rcvd.code == 4408
    assert INIT_TIMEOUT * 0.8 <= time.monotonic() - began < INIT_TIMEOUT + 3
    assert any(source in line for line in limited.log_lines("websocket closed: no connection_init in time"))


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_over_the_per_connection_cap_gets_a_typed_error(
    limited: Server, protocol: str
) -> None:
    signed = token(f"ops-{protocol}")
    async with socket(limited, protocol) as ws:
        await init(ws, signed)
        for number in range(OPERATIONS):
            await start(ws, f"live-{number}", CATALOG_CHANGED, protocol)
        await start(ws, "one-too-many", CATALOG_CHANGED, protocol)
        refusal = await receive(ws)
        await start(ws, "query", BOOKS, protocol)  # the connection is still open; still full
        still_full = await receive(ws)
        await send(ws, {"id": "live-0", "type": "complete" if protocol == TRANSPORT_WS else "stop"})
        await asyncio.sleep(0.2)
        await start(ws, "query-2", BOOKS, protocol)
        answer = await receive(ws)
        if answer["type"] == "complete":  # legacy graphql-ws answers a stop with complete
            answer = await receive(ws)

    assert refusal["type"] == "error" and refusal["id"] == "one-too-many"
    assert codes(refusal) == ["TOO_MANY_OPERATIONS"]
    assert still_full["id"] == "query" and codes(still_full) == ["TOO_MANY_OPERATIONS"]
    assert answer["id"] == "query-2" and answer["type"] in ("next", "data")
    assert limited.log_lines(f"websocket refused an operation over {OPERATIONS} on one connection")


async def test_subscriptions_are_capped_per_user_across_connections(limited: Server) -> None:
    signed = token("many-subscriptions")
    async with socket(limited) as first, socket(limited, LEGACY_WS) as second:
        await init(first, signed)
        await init(second, signed)
        for number in range(OPERATIONS):
            await start(first, f"a{number}", CATALOG_CHANGED)
        await start(second, "b0", CATALOG_CHANGED, LEGACY_WS)
        await asyncio.sleep(0.3)
        await start(second, "b1", CATALOG_CHANGED, LEGACY_WS)
        refusal = await receive(second)
        await start(second, "query", BOOKS, LEGACY_WS)  # queries are not subscriptions
        query = await receive(second)
        assert (await receive(second))["type"] == "complete"
        await send(first, {"id": "a0", "type": "complete"})
        await asyncio.sleep(0.3)
        await start(second, "b2", CATALOG_CHANGED, LEGACY_WS)
        await asyncio.sleep(0.3)
        await start(first, "a2", CATALOG_CHANGED)  # the caller's 4th: a1, b0 and b2 are live
        second_refusal = await receive(first)

    assert refusal["type"] == "error" and refusal["id"] == "b1"
    assert codes(refusal) == ["TOO_MANY_SUBSCRIPTIONS"]
    assert query["id"] == "query" and query["type"] == "data"
    assert second_refusal["id"] == "a2" and codes(second_refusal) == ["TOO_MANY_SUBSCRIPTIONS"]
    assert limited.log_lines(f"websocket refused a subscription over {SUBSCRIPTIONS} for user:many-")


async def test_a_dropped_connection_gives_its_subscriptions_back(limited: Server) -> None:
    signed = token("drops")
    for _ in range(3):
        async with socket(limited) as ws:
            await init(ws, signed)
            for number in range(OPERATIONS):
                await start(ws, f"s{number}", CATALOG_CHANGED)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)
    async with socket(limited) as ws:
        await init(ws, signed)
        await start(ws, "last", CATALOG_CHANGED)
        await start(ws, "query", BOOKS)
        answer = await receive(ws)

    assert answer["id"] == "query" and answer["type"] == "next"


async def test_queries_and_mutations_over_legacy_graphql_ws_answer_data_then_complete(
    limited: Server,
) -> None:
    async with socket(limited, LEGACY_WS) as ws:
        await init(ws)
        await start(ws, "q", BOOKS, LEGACY_WS)
        query = [await receive(ws), await receive(ws)]
        await start(ws, "m", CREATE_AUTHOR, LEGACY_WS)
        mutation = [await receive(ws), await receive(ws)]
        await start(ws, "bad", "{ noSuchField }", LEGACY_WS)
        invalid = await receive(ws)

    assert [m["type"] for m in query] == ["data", "complete"]
    assert query[0]["payload"]["data"]["books"]["totalCount"] >= 0
    assert [m["type"] for m in mutation] == ["data", "complete"]
    assert mutation[0]["payload"]["data"]["createAuthor"]["__typename"] == "Forbidden"
    assert invalid["type"] == "error" and "noSuchField" in invalid["payload"]["message"]


@pytest.mark.parametrize(
    "message",
    [[1, 2], "text", {"type": "start"}, {"type": "start", "id": "1", "payload": "not an object"}],
)
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_malformed_messages_close_the_connection_cleanly(
    limited: Server, protocol: str, message: Any
) -> None:
    if protocol == TRANSPORT_WS and isinstance(message, dict):
        message = {**message, "type": "subscribe"}
    async with socket(limited, protocol) as ws:
        await init(ws)
        await ws.send(json.dumps(message))
        closing = await closed(ws)

    assert closing.rcvd is not None and closing.rcvd.code == 4400


async def test_a_second_legacy_connection_init_closes_the_connection(limited: Server) -> None:
    async with socket(limited, LEGACY_WS) as ws:
        await init(ws)
        await send(ws, {"type": "connection_init", "payload": {}})
        closing = await closed(ws)

    assert closing.rcvd is not None and closing.rcvd.code == 4429


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_is_closed_when_its_token_expires(limited: Server, protocol: str) -> None:
    signed = token(f"expiring-{protocol}", ttl=2)
    async with socket(limited, protocol) as ws:
        await init(ws, signed)
        await start(ws, "live", CATALOG_CHANGED, protocol)
        messages: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as error:
            while True:
                messages.append(await receive(ws))

    assert error.value.rcvd is not None
    assert (error.value.rcvd.code, error.value.rcvd.reason) == (4403, "token expired")
    if protocol == LEGACY_WS:
        assert messages[-1]["type"] == "connection_error"
        assert messages[-1]["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
    assert limited.log_lines("websocket closed: token expired")


async def test_a_token_living_longer_than_the_maximum_is_refused(limited: Server) -> None:
    long_lived = token("forever", ttl=TOKEN_LIFETIME + 60)
    numeric_string = jwt.encode({"sub": "s", "exp": str(int(time.time()) + 60)}, SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=limited.url, timeout=WAIT) as http:
        too_long = await http.post("/graphql", json={"query": BOOKS}, headers=bearer(long_lived))
        string_exp = await http.post("/graphql", json={"query": BOOKS}, headers=bearer(numeric_string))
    async with socket(limited) as ws:
        await send(ws, {"type": "connection_init", "payload": bearer(long_lived)})
        closing = await closed(ws)

    assert too_long.status_code == 401 and f"at most {TOKEN_LIFETIME} s" in too_long.text
    assert string_exp.status_code == 401 and "`exp` claim must be a number" in string_exp.text
    assert closing.rcvd is not None and closing.rcvd.code == 4403


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_oversized_message_closes_the_connection_with_1009(limited: Server, protocol: str) -> None:
    async with socket(limited, protocol, source="127.0.3.1") as ws:
        await init(ws)
        await start(ws, "big", "{ books(first: 1) { totalCount } }" + " " * MESSAGE_BYTES, protocol)
        closing = await closed(ws)

    assert closing.rcvd is not None and closing.rcvd.code == 1009
    await asyncio.sleep(0.2)
    lines = limited.log_lines(f"websocket closed: a message over {MESSAGE_BYTES} bytes (client 127.0.3.1)")
    assert lines
