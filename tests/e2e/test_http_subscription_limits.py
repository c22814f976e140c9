"""Subscriptions over plain HTTP held to the limits, through a real server with tight settings: the caps they
share with websockets, keep-alives, token expiry, budgets, and what an open stream does not hold."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from app.identity.tokens import issue
from app.settings import Settings
from tests.e2e.clients import MULTIPART, SSE, WAIT, HTTPSubscription, bearer
from tests.e2e.test_websocket_limits import Server, codes, init, receive, socket, start
from tests.faults.cluster import Cluster

pytestmark = pytest.mark.e2e

SECRET = "an-http-subscriptions-secret-of-32-bytes-or-more"
PER_IP = 3
SUBSCRIPTIONS = 2
LIMITS = {
    "BOOKWORM_MAX_WS_CONNECTIONS_PER_IP": PER_IP,
    "BOOKWORM_MAX_SUBSCRIPTIONS_PER_USER": SUBSCRIPTIONS,
    "BOOKWORM_SSE_KEEP_ALIVE": 0.2,
    "BOOKWORM_MULTIPART_KEEP_ALIVE": 0.2,
    # Two requests in flight and one running per client: an open stream must hold neither.
    "BOOKWORM_MAX_REQUESTS_IN_FLIGHT": 2,
    "BOOKWORM_CLIENT_REQUESTS_RUNNING": 1,
    "BOOKWORM_CLIENT_REQUESTS_WAITING": 1,
    "BOOKWORM_BUDGET_CAPACITY": 100,
}
CATALOG_CHANGED = "subscription { catalogChanged { kind entity entityId } }"
BOOKS = "{ books(first: 1) { totalCount } }"


@pytest.fixture(scope="module")
def limited(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A `bookworm serve` (no workers) with tight limits; its log is read by the tests."""
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("limited-streams"))
    limits = {name: str(value) for name, value in LIMITS.items()}
    try:
        api = cluster.api("streams", BOOKWORM_JWT_SECRET=SECRET, BOOKWORM_LOG_LEVEL="INFO", **limits)
        yield Server(api.url, api.log)
    finally:
        cluster.stop()
    assert "Traceback" not in api.log.read_text()


def token(subject: str, ttl: int = 600) -> str:
    return issue(SECRET, subject=subject, ttl=ttl)


@asynccontextmanager
async def client(server: Server, source: str, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client from the local address `source`, signed in with `token` when given."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    headers = {} if token is None else bearer(token)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=WAIT, transport=transport, headers=headers
    ) as http:
        yield http


async def opened(stack: AsyncExitStack, http: httpx.AsyncClient, accept: str = SSE) -> HTTPSubscription:
    """A catalogChanged stream entered on `stack`; it may have been refused (see `.streaming`)."""
    return await stack.enter_async_context(HTTPSubscription(http, CATALOG_CHANGED, accept=accept))


def refusal(stream: HTTPSubscription) -> tuple[int, str]:
    assert stream.response is not None
    return stream.response.status_code, stream.response.headers.get("retry-after", "")


async def test_streams_and_websockets_share_the_per_user_subscription_cap(limited: Server) -> None:
    signed = token("one-user")
    async with client(limited, "127.0.5.1", signed) as http, AsyncExitStack() as stack:
        streams = [await opened(stack, http), await opened(stack, http, MULTIPART)]
        over = await opened(stack, http)
        body = await over.json()
        async with socket(limited, source="127.0.5.2") as ws:
            await init(ws, signed)
            await start(ws, "live", CATALOG_CHANGED)
            websocket_refusal = await receive(ws)
        await streams[0].__aexit__()
        again = await eventually_opened(stack, http)

    assert all(stream.streaming for stream in streams)
    assert refusal(over) == (429, "5")
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert codes(websocket_refusal) == ["TOO_MANY_SUBSCRIPTIONS"]
    assert again.streaming  # a closed stream gave its subscription back
    assert limited.log_lines(f"HTTP stream refused: a subscription over {SUBSCRIPTIONS} for user:one-user")


async def test_streams_and_websockets_share_the_per_address_connection_cap(limited: Server) -> None:
    async with AsyncExitStack() as stack:
        for number in range(PER_IP):
            http = await stack.enter_async_context(client(limited, "127.0.5.3", token(f"address-{number}")))
            assert (await opened(stack, http)).streaming
        over = await opened(stack, http)
        body = await over.json()
        with pytest.raises(InvalidStatus) as websocket_refusal:
            async with socket(limited, source="127.0.5.3"):
                pass
        elsewhere = await stack.enter_async_context(client(limited, "127.0.5.4"))
        other_address = await opened(stack, elsewhere)

    assert refusal(over) == (429, "5")
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_CONNECTIONS"
    assert websocket_refusal.value.response.status_code == 429
    assert other_address.streaming
    assert limited.log_lines(f"HTTP stream refused: over {PER_IP} connections from one address")


async def test_open_streams_hold_no_request_in_flight_and_no_turn_of_their_client(limited: Server) -> None:
    # Two requests may be in flight at once, and this client runs one at a time: its two open streams
    # would leave no room for a third stream nor for its query if they held either.
    async with client(limited, "127.0.5.5", token("busy")) as http, AsyncExitStack() as stack:
        streams = [await opened(stack, http), await opened(stack, http, MULTIPART)]
        query = await http.post("/graphql", json={"query": BOOKS})
        anonymous = await stack.enter_async_context(client(limited, "127.0.5.5"))
        third = await opened(stack, anonymous)

    assert all(stream.streaming for stream in streams) and third.streaming
    assert query.status_code == 200, query.text


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_an_idle_stream_gets_keep_alives(limited: Server, accept: str) -> None:
    async with (
        client(limited, "127.0.5.6") as http,
        HTTPSubscription(http, CATALOG_CHANGED, accept=accept) as stream,
    ):
        for _ in range(3):  # the opening one, then two sent because nothing happened
            await stream.keep_alive()

    assert stream.streaming


async def test_a_stream_ends_with_an_error_when_its_token_expires(limited: Server) -> None:
    async with client(limited, "127.0.5.7", token("expiring", ttl=3)) as http, AsyncExitStack() as stack:
        sse = await opened(stack, http)
        multipart = await opened(stack, http, MULTIPART)
        sse_messages = [await sse.next_message() for _ in range(3)]
        multipart_messages = [await multipart.next_message() for _ in range(3)]

    (kind, result), *rest = sse_messages
    assert kind == "next" and result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert rest == [("complete", None), ("end", None)]
    (kind, errors), *rest = multipart_messages
    assert kind == "error" and errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert rest == [("complete", None), ("end", None)]
    assert limited.log_lines("HTTP stream closed: token expired (client 127.0.5.7)")


async def test_a_subscription_over_budget_is_refused_with_429(limited: Server) -> None:
    padded = CATALOG_CHANGED + " " * 150_000  # its text alone costs 151 points, over the capacity of 100
    async with client(limited, "127.0.5.8", token("spender")) as http:
        async with HTTPSubscription(http, padded) as stream:
            body = await stream.json()

    assert stream.response is not None and stream.response.status_code == 429
    assert stream.response.headers["retry-after"]
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_dropped_streams_give_their_slots_back(limited: Server) -> None:
    rng = random.Random(random.randrange(2**32))
    signed = token("dropper")
    async with client(limited, "127.0.5.9", signed) as http:
        for _ in range(30):
            stream = HTTPSubscription(http, CATALOG_CHANGED, accept=rng.choice([SSE, MULTIPART]))
            opening = asyncio.ensure_future(stream.__aenter__())
            await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.02)]))
            opening.cancel()
            try:
                await opening
            except asyncio.CancelledError:
                continue
            await stream.__aexit__()
        async with AsyncExitStack() as stack:
            streams = [await eventually_opened(stack, http) for _ in range(SUBSCRIPTIONS)]

    assert all(stream.streaming for stream in streams)  # every slot came back


async def eventually_opened(stack: AsyncExitStack, http: httpx.AsyncClient) -> HTTPSubscription:
    """A stream opened once the slots of streams just closed are back (the server frees them as it sees
    the client leave), entered on `stack`."""
    async with asyncio.timeout(WAIT):
        while True:
            async with AsyncExitStack() as attempt:
                stream = await opened(attempt, http)
                if stream.streaming:
                    attempt.pop_all()
                    stack.push_async_callback(stream.__aexit__)
                    return stream
            await asyncio.sleep(0.1)


async def test_a_stopping_server_ends_its_streams_as_dropped_connections(
    make_settings: Callable[[], Settings], tmp_path_factory: pytest.TempPathFactory
) -> None:
    cluster = Cluster(make_settings(), tmp_path_factory.mktemp("stopping-streams"))
    try:
        api = cluster.api("stopping", BOOKWORM_JWT_SECRET=SECRET, BOOKWORM_LOG_LEVEL="INFO")
        server = Server(api.url, api.log)
        async with client(server, "127.0.5.11") as http, AsyncExitStack() as stack:
            streams = [await opened(stack, http), await opened(stack, http, MULTIPART)]
            stopping = asyncio.create_task(asyncio.to_thread(api.stop))
            ends = [await stream.next_message() for stream in streams]
            await stopping
    finally:
        cluster.stop()

    # No `complete`: a client takes it for a dropped connection, and subscribes again (with `after:`).
    assert ends == [("end", None), ("end", None)]
    assert "graceful shutdown exceeded" not in api.log.read_text()
