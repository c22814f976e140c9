"""Subscriptions over plain HTTP, through the session server: GraphQL over SSE and multipart subscriptions,
resume with `after:`, the same refusals as over websockets, request errors, and streams that leave nothing
behind when their clients drop them."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.live.notices import book_topic
from app.settings import Settings
from tests.e2e.clients import MULTIPART, SSE, TRANSPORT_WS, WAIT, HTTPSubscription, Subscription, bearer, gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.e2e.operations import create_book, update_book
from tests.e2e.test_subscriptions import BOOK_CHANGED, CATALOG_CHANGED, purge_up_to

pytestmark = pytest.mark.e2e

BASKET_CHANGED = "subscription { basketChanged { kind basketId } }"
DROPPED = 120  # streams opened and dropped at random moments
AT_ONCE = 20


async def test_an_sse_client_receives_each_change_of_a_book_as_it_happens(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs)
    book_id = created["bookId"]

    async with HTTPSubscription(http, BOOK_CHANGED, {"id": book_id}) as stream:
        # The headers came: the subscription is live, so nothing changed from now on can be missed.
        first = await update_book(http, book_id, price="31.00")
        second = await update_book(http, book_id, price="32.00")
        changes = [(await stream.next_data())["bookChanged"] for _ in range(2)]

    assert stream.content_type.startswith("text/event-stream")
    assert [c["position"] for c in changes] == [first["position"], second["position"]]
    # Each event reads the book afresh (a stream's loaders keep nothing from one event to the next).
    assert [c["book"]["price"] for c in changes] == ["31.00", "32.00"]


async def test_an_sse_subscription_sent_with_get_receives_catalog_changes(http: httpx.AsyncClient) -> None:
    async with HTTPSubscription(http, CATALOG_CHANGED, method="GET") as stream:
        author = (await gql(http, CREATE_AUTHOR, {"name": "Seen over SSE with GET"}))["createAuthor"]
        change = (await stream.next_data())["catalogChanged"]
        while change["entityId"] != author["authorId"]:  # another test's change may come first
            change = (await stream.next_data())["catalogChanged"]

    assert (change["kind"], change["entity"], change["position"]) == ("CREATED", "Author", author["position"])


async def test_a_multipart_client_receives_catalog_changes(http: httpx.AsyncClient) -> None:
    async with HTTPSubscription(http, CATALOG_CHANGED, accept=MULTIPART) as stream:
        author = (await gql(http, CREATE_AUTHOR, {"name": "Seen over multipart"}))["createAuthor"]
        change = (await stream.next_data())["catalogChanged"]
        while change["entityId"] != author["authorId"]:
            change = (await stream.next_data())["catalogChanged"]

    assert stream.content_type == 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0"'
    assert stream.keep_alives >= 1  # the `{}` part that opens the stream
    assert (change["kind"], change["position"]) == ("CREATED", author["position"])


async def test_after_replays_the_missed_changes_over_sse_then_the_live_ones(
    http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs)
    book_id = created["bookId"]
    missed = [await update_book(http, book_id, price=price) for price in ("41.00", "42.00")]

    variables = {"id": book_id, "after": created["position"]}
    async with HTTPSubscription(http, BOOK_CHANGED, variables) as stream:
        replayed = [(await stream.next_data())["bookChanged"] for _ in missed]
        live = await update_book(http, book_id, price="43.00")
        after_replay = (await stream.next_data())["bookChanged"]

    assert [c["position"] for c in replayed] == [m["position"] for m in missed]
    assert (after_replay["position"], after_replay["book"]["price"]) == (live["position"], "43.00")


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_a_resume_from_a_purged_position_is_an_error_in_the_stream(
    http: httpx.AsyncClient, refs: dict[str, Any], e2e_settings: Settings, accept: str
) -> None:
    created = await create_book(http, refs)
    updated = await update_book(http, created["bookId"], price="50.00")
    assert updated["book"]["price"] == "50.00"  # read your writes: its read.changes row is written
    await purge_up_to(e2e_settings, updated["position"])

    variables = {"id": created["bookId"], "after": created["position"]}
    async with HTTPSubscription(http, BOOK_CHANGED, variables, accept=accept) as stream:
        messages = [await stream.next_message() for _ in range(3)]

    assert stream.streaming
    (kind, result), end, closed = messages
    assert kind == "next" and result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "RESUME_EXPIRED"}
    assert "subscribe again without `after`" in result["errors"][0]["message"]
    assert (end, closed) == (("complete", None), ("end", None))


@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_an_anonymous_subscription_to_a_basket_is_refused_as_over_a_websocket(
    anon_http: httpx.AsyncClient, ws_url: str, accept: str
) -> None:
    async with HTTPSubscription(anon_http, BASKET_CHANGED, accept=accept) as stream:
        kind, result = await stream.next_message()
        end = await stream.next_message()
    async with Subscription(TRANSPORT_WS, ws_url, BASKET_CHANGED) as subscription:
        refusal = await subscription.next_message()

    assert stream.streaming and kind == "next" and end == ("complete", None)
    assert refusal["type"] == "error"
    assert result["errors"] == refusal["payload"]
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_subscription_that_needs_a_sign_in_streams_for_a_signed_in_customer(
    alice_http: httpx.AsyncClient,
) -> None:
    async with HTTPSubscription(alice_http, BASKET_CHANGED) as stream:
        pass

    assert stream.streaming


SUBSCRIBE = "subscription { catalogChanged { kind } }"
MUTATE = 'mutation { createAuthor(input: {name: "Sent as a stream"}) { __typename } }'
QUERY = "{ books(first: 1) { totalCount } }"


@pytest.mark.parametrize(
    ("query", "operation", "method", "status", "code", "message"),
    [
        ("subscription { catalogChanged { kind }", None, "POST", 400, None, "Syntax Error"),
        ("subscription { noSuchField }", None, "POST", 400, None, "Cannot query field 'noSuchField'"),
        (SUBSCRIBE, "Other", "POST", 400, "BAD_REQUEST", 'Unknown operation named "Other"'),
        ("subscription($id: ID!) { bookChanged(id: $id) { kind } }", None, "GET", 400, None, "$id"),
        (MUTATE, None, "GET", 405, "METHOD_NOT_ALLOWED", "mutations are not allowed when using GET"),
    ],
)
@pytest.mark.parametrize("accept", [SSE, MULTIPART])
async def test_a_request_error_is_answered_as_json_with_its_status(
    anon_http: httpx.AsyncClient,
    accept: str,
    query: str,
    operation: str | None,
    method: str,
    status: int,
    code: str | None,
    message: str,
) -> None:
    stream = HTTPSubscription(anon_http, query, accept=accept, method=method)
    if operation is not None:
        stream.request = anon_http.build_request(
            "POST", "/graphql", json={"query": query, "operationName": operation}, headers={"accept": accept}
        )
    async with stream:
        body = await stream.json()

    assert stream.response is not None and stream.response.status_code == status
    assert stream.content_type.startswith("application/json")
    assert message in body["errors"][0]["message"]
    assert body["errors"][0].get("extensions", {}).get("code") == code
    assert "data" not in body


async def test_a_bad_token_is_refused_before_any_stream(anon_http: httpx.AsyncClient) -> None:
    async with HTTPSubscription(anon_http, SUBSCRIBE, headers=bearer("not-a-token")) as stream:
        body = await stream.json()

    assert stream.response is not None and stream.response.status_code == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_mutation_sent_to_a_stream_only_client_is_one_result_then_complete(
    anon_http: httpx.AsyncClient,
) -> None:
    async with HTTPSubscription(anon_http, MUTATE) as stream:
        messages = [await stream.next_message() for _ in range(3)]

    (kind, result), end, closed = messages
    assert stream.streaming and kind == "next"
    assert result["data"] == {"createAuthor": {"__typename": "Forbidden"}}  # anonymous: refused as data
    assert (end, closed) == (("complete", None), ("end", None))


async def test_a_query_from_a_client_that_reads_json_too_gets_the_plain_answer(
    anon_http: httpx.AsyncClient,
) -> None:
    accept = f"application/json, {SSE}, multipart/mixed"
    async with HTTPSubscription(anon_http, QUERY, accept=accept) as stream:
        body = await stream.json()

    assert stream.response is not None and stream.response.status_code == 200
    assert body["data"]["books"]["totalCount"] >= 0


async def test_a_subscription_asked_for_as_plain_json_is_refused_with_a_code(
    anon_http: httpx.AsyncClient,
) -> None:
    response = await anon_http.post("/graphql", json={"query": SUBSCRIBE})

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "OPERATION_NOT_SUPPORTED"
    assert "text/event-stream" in response.json()["errors"][0]["message"]


async def drop_at_random(http: httpx.AsyncClient, variables: dict[str, Any], rng: random.Random) -> None:
    """Open one stream and drop it: while it opens, as it opens, or a moment after."""
    stream = HTTPSubscription(http, BOOK_CHANGED, variables, accept=rng.choice([SSE, MULTIPART]))
    opening = asyncio.ensure_future(stream.__aenter__())
    if rng.random() < 0.4:
        await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.03)]))
        opening.cancel()
    try:
        await opening
    except asyncio.CancelledError:
        return
    if rng.random() < 0.5:
        await asyncio.sleep(rng.uniform(0, 0.02))
    await stream.__aexit__()


async def test_streams_dropped_at_any_moment_leave_no_subscription_behind(
    server: str, http: httpx.AsyncClient, refs: dict[str, Any], e2e_settings: Settings
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    book_id = (await create_book(http, refs))["bookId"]
    limits = httpx.Limits(max_connections=AT_ONCE, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server, timeout=WAIT, limits=limits) as client:
        slots = asyncio.Semaphore(AT_ONCE)

        async def cycle() -> None:
            async with slots:
                await drop_at_random(client, {"id": book_id}, rng)

        await asyncio.wait_for(asyncio.gather(*(cycle() for _ in range(DROPPED))), 30 * WAIT)

    redis = aioredis.Redis.from_url(e2e_settings.redis_url or "", decode_responses=True)
    try:
        channel = e2e_settings.changes_channel(book_topic(book_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while await redis.pubsub_channels(channel):
            assert loop.time() < deadline, f"{channel} is still subscribed (seed {seed})"
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
