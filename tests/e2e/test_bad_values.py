"""Absurd values in cursors, positions, decimals and text arguments: typed errors, never a 500 or a trace."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from app.ids import new_id
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, Subscription, gql
from tests.e2e.operations import CREATE_BOOK, book_input, create_book, settled_book_count, update_book

pytestmark = pytest.mark.e2e

GRAPHQL_RESPONSE = "application/graphql-response+json"
LEAKS = ("Traceback", 'File "', "asyncpg", "SELECT ", "INTERNAL_SERVER_ERROR", "read.")
ANY_ID = "0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3"
MAX_POSITION = 2**63 - 1

BOOKS = """query($after: String, $order: BookOrderBy, $search: String) {
  books(after: $after, orderBy: $order, search: $search) { totalCount } }"""
AUTHORS = "query($after: String, $search: String) { authors(after: $after, search: $search) { totalCount } }"
FEEDBACKS = f"""query($after: String, $order: FeedbackOrderBy) {{
  feedbacks(bookId: "{ANY_ID}", after: $after, orderBy: $order) {{ totalCount }} }}"""
ORDERS = "query($after: String) { orders(after: $after) { totalCount } }"
NOTIFICATIONS = "query($after: String) { notifications(after: $after) { totalCount } }"
FILTERED = "query($filter: BookFilter) { books(filter: $filter) { totalCount } }"
BOOK_CHANGED = """subscription($id: ID!, $after: String) {
  bookChanged(id: $id, after: $after) { kind position } }"""
CATALOG_CHANGED = "subscription($after: String) { catalogChanged(after: $after) { kind position } }"


@pytest.fixture(autouse=True)
def no_traceback_logged(server: str, server_log: Path) -> Iterator[None]:
    """Fail a test whose requests made the server log a traceback or an unexpected error."""
    start = server_log.stat().st_size
    yield
    with server_log.open("rb") as log:
        log.seek(start)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged and "unexpected error" not in logged, logged[-4000:]


def cursor(*parts: Any) -> str:
    """A connection cursor as the server encodes them, around any JSON."""
    return raw_cursor(json.dumps(list(parts)))


def raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def assert_no_leak(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert not any(leak in response.text for leak in LEAKS), response.text


async def refused(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], field: str
) -> dict[str, Any]:
    """Send a query that must fail with VALIDATION_FAILED naming `field`; return the error."""
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert_no_leak(response)
    body = response.json()
    assert response.status_code == 200, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert field in [f["field"] for f in error["extensions"]["fields"]], error
    return dict(error)


DEEP = "[" * 50_000 + "]" * 50_000
PRICE = {"order": "PRICE"}
BY_RATING = {"order": "RATING"}

CONNECTION_CURSORS = [
    pytest.param(BOOKS, {"order": "NAME"}, cursor("NAME:asc", "\x00", ANY_ID), id="books-name-nul"),
    pytest.param(BOOKS, {"order": "NAME"}, cursor("NAME:asc", "\ud800", ANY_ID), id="books-name-surrogate"),
    pytest.param(BOOKS, {"order": "NAME"}, cursor("NAME:asc", "x" * 5000, ANY_ID), id="books-name-huge"),
    pytest.param(BOOKS, {"order": "NAME"}, raw_cursor(DEEP), id="books-deep-json"),
    pytest.param(BOOKS, {"order": "NAME"}, "A" * 100_000, id="books-huge-cursor"),
    pytest.param(BOOKS, PRICE, cursor("PRICE:asc", "1e999999999", ANY_ID), id="price-1e999999999"),
    pytest.param(BOOKS, PRICE, cursor("PRICE:asc", "1e-999999", ANY_ID), id="price-1e-999999"),
    pytest.param(BOOKS, PRICE, cursor("PRICE:asc", "NaN", ANY_ID), id="price-nan"),
    pytest.param(BOOKS, PRICE, cursor("PRICE:asc", "Infinity", ANY_ID), id="price-inf"),
    pytest.param(BOOKS, PRICE, cursor("PRICE:asc", str(10**40), ANY_ID), id="price-10e40"),
    pytest.param(BOOKS, {"order": "RATING"}, raw_cursor(f'["RATING:asc",1e999,"{ANY_ID}"]'), id="rating-inf"),
    pytest.param(BOOKS, {"order": "RATING"}, raw_cursor(f'["RATING:asc",NaN,"{ANY_ID}"]'), id="rating-nan"),
    pytest.param(BOOKS, {"order": "RATING"}, cursor("RATING:asc", 10**400, ANY_ID), id="rating-10e400"),
    pytest.param(BOOKS, {"order": "RATING"}, cursor("RATING:asc", -(10**40), ANY_ID), id="rating-negative"),
    pytest.param(
        BOOKS,
        {"order": "RELEVANCE", "search": "sea"},
        cursor("RELEVANCE:desc", 1e300, ANY_ID),
        id="rank-1e300",
    ),
    pytest.param(
        BOOKS,
        {"order": "NEWEST"},
        cursor("NEWEST:desc", "0001-01-01T00:00:00+05:00", ANY_ID),
        id="newest-year-1",
    ),
    pytest.param(
        BOOKS,
        {"order": "NEWEST"},
        cursor("NEWEST:desc", "9999-12-31T23:59:59-05:00", ANY_ID),
        id="newest-year-9999",
    ),
    pytest.param(BOOKS, {"order": "NEWEST"}, cursor("NEWEST:desc", "NaN", ANY_ID), id="newest-nan"),
    pytest.param(AUTHORS, {}, cursor("author:name", "\x00", ANY_ID), id="authors-nul"),
    pytest.param(AUTHORS, {}, cursor("author:name", "\udfff", ANY_ID), id="authors-surrogate"),
    pytest.param(AUTHORS, {}, cursor("author:name", 10**40, ANY_ID), id="authors-number"),
    pytest.param(AUTHORS, {}, raw_cursor(DEEP), id="authors-deep-json"),
    pytest.param(FEEDBACKS, BY_RATING, cursor("feedback:RATING", 10**40, ANY_ID), id="rating-10e40"),
    pytest.param(FEEDBACKS, BY_RATING, cursor("feedback:RATING", -(2**31) - 1, ANY_ID), id="rating-int32"),
    pytest.param(
        FEEDBACKS,
        {"order": "NEWEST"},
        cursor("feedback:NEWEST", "0001-01-01T00:00:00+05:00", ANY_ID),
        id="feedback-year-1",
    ),
    pytest.param(FEEDBACKS, {"order": "NEWEST"}, raw_cursor(DEEP), id="feedback-deep-json"),
]


@pytest.mark.parametrize(("query", "variables", "after"), CONNECTION_CURSORS)
async def test_absurd_connection_cursors_are_refused(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], after: str
) -> None:
    error = await refused(http, query, {**variables, "after": after}, "after")

    assert error["message"]


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(cursor("order:newest", "9999-12-31T23:59:59-05:00", ANY_ID), id="year-9999"),
        pytest.param(cursor("order:newest", "0001-01-01T00:00:00+05:00", ANY_ID), id="year-1"),
        pytest.param(raw_cursor(DEEP), id="deep-json"),
    ],
)
async def test_absurd_order_cursors_are_refused(alice_http: httpx.AsyncClient, after: str) -> None:
    await refused(alice_http, ORDERS, {"after": after}, "after")


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(cursor("notification:newest", "0001-01-01T00:00:00+05:00", ANY_ID), id="year-1"),
        pytest.param(cursor("notification:newest", 10**40, ANY_ID), id="number"),
        pytest.param(raw_cursor(DEEP), id="deep-json"),
    ],
)
async def test_absurd_notification_cursors_are_refused(http: httpx.AsyncClient, after: str) -> None:
    await refused(http, NOTIFICATIONS, {"after": after}, "after")


@pytest.mark.parametrize("search", ["nul \x00 here", "\ud800", "lone \udfff"])
@pytest.mark.parametrize("query", [BOOKS, AUTHORS], ids=["books", "authors"])
async def test_unstorable_search_is_refused(http: httpx.AsyncClient, query: str, search: str) -> None:
    # httpx would refuse to encode a lone surrogate: send the JSON escape as a client would.
    body = json.dumps({"query": query, "variables": {"search": search}})
    response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})

    assert_no_leak(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert [f["field"] for f in error["extensions"]["fields"]] == ["search"]


async def test_overlong_search_is_refused(http: httpx.AsyncClient) -> None:
    await refused(http, BOOKS, {"search": "word " * 10_000}, "search")


@pytest.mark.parametrize("value", ["\x00", "\ud800", "x" * 100_000])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("query($v: ID!) { book(id: $v) { id } }", "id"),
        ("query($v: ID!) { author(id: $v) { id } }", "id"),
        ("query($v: ID!) { order(id: $v) { id } }", "id"),
        ("query($v: ID!) { feedbacks(bookId: $v) { totalCount } }", "bookId"),
        ("query($v: ID) { orders(buyerId: $v) { totalCount } }", "buyerId"),
        ("query($v: ID) { notifications(orderId: $v) { totalCount } }", "orderId"),
        ("query($v: ID!) { streamHistory(streamId: $v) { type } }", "streamId"),
    ],
)
async def test_unstorable_id_arguments_are_refused(
    http: httpx.AsyncClient, query: str, field: str, value: str
) -> None:
    body = json.dumps({"query": query, "variables": {"v": value}})
    response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})

    assert_no_leak(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert [f["field"] for f in error["extensions"]["fields"]] == [field]


BAD_DECIMALS = [
    "1e999999999",
    "1e-999999",
    "NaN",
    "-Infinity",
    "Infinity",
    "1_000",
    "\u0661\u0662",
    " 12",
    "0x10",
    "",
]


@pytest.mark.parametrize("value", BAD_DECIMALS)
@pytest.mark.parametrize("field", ["minPrice", "maxPrice"])
async def test_absurd_filter_decimals_are_refused(http: httpx.AsyncClient, field: str, value: str) -> None:
    response = await http.post("/graphql", json={"query": FILTERED, "variables": {"filter": {field: value}}})

    assert_no_leak(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert field in error["message"]


@pytest.mark.parametrize("value", ["1" + "0" * 30, "-0", "12.345", "0"])
async def test_large_or_fine_grained_filter_decimals_are_answered(
    http: httpx.AsyncClient, value: str
) -> None:
    data = await gql(http, FILTERED, {"filter": {"minPrice": value}})

    assert data["books"]["totalCount"] >= 0


async def test_absurd_inline_decimal_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": '{ books(filter: {minPrice: "1e999999999"}) { totalCount } }'}
    )

    assert_no_leak(response)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED", error


@pytest.mark.parametrize("value", [*BAD_DECIMALS, "1" + "0" * 30])
async def test_absurd_prices_are_refused_and_change_nothing(
    http: httpx.AsyncClient, refs: dict[str, Any], value: str
) -> None:
    before = await settled_book_count(http)

    response = await http.post(
        "/graphql", json={"query": CREATE_BOOK, "variables": {"input": book_input(refs, price=value)}}
    )

    assert_no_leak(response)
    body = response.json()
    if "errors" in body:
        [error] = body["errors"]
        assert error["extensions"]["code"] == "VALIDATION_FAILED", error
        assert "price" in error["message"]
    else:
        assert body["data"]["createBook"]["__typename"] == "ValidationFailed", body
    assert await settled_book_count(http) == before


LENIENT_POSITIONS = [
    "0x" + "0" * 29 + "1",
    "+" + "0" * 31,
    "0" * 15 + "_" + "0" * 16,
    " " + "0" * 31,
    "0" * 31 + "\u0661",
    "0" * 16 + "0" * 15 + "A",
    "f" * 32,
    "8" + "0" * 31,
    "0" * 16 + "8" + "0" * 15,
    "",
    "0" * 33,
]


# HTTP itself drops spaces around a header value: the client refuses to send them.
@pytest.mark.parametrize("position", [p for p in LENIENT_POSITIONS if p.strip() == p])
async def test_position_header_must_be_canonical(http: httpx.AsyncClient, position: str) -> None:
    headers = {"Bookworm-Position": position.encode()}
    response = await http.post("/graphql", json={"query": "{ books { totalCount } }"}, headers=headers)

    assert_no_leak(response)
    assert response.status_code == 400, response.text
    assert "Bookworm-Position" in response.json()["errors"][0]["message"]


def first_error(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "error", message
    payload = message["payload"]
    errors: list[dict[str, Any]] = payload if isinstance(payload, list) else [payload]
    return errors[0]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize("position", LENIENT_POSITIONS)
async def test_subscription_after_must_be_canonical(ws_url: str, protocol: str, position: str) -> None:
    async with Subscription(protocol, ws_url, CATALOG_CHANGED, {"after": position}) as subscription:
        error = first_error(await subscription.next_message())

    assert error["extensions"]["code"] == "VALIDATION_FAILED", error
    assert error["extensions"]["fields"][0]["field"] == "after"


def beyond(position: str) -> str:
    """A well-formed position one transaction after `position`: no event has it yet."""
    return f"{int(position[:16], 16) + 1:016x}{int(position[16:], 16):016x}"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscription_after_beyond_the_newest_event_is_refused(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, protocol: str
) -> None:
    created = await create_book(http, refs)
    future = [beyond(created["position"]), f"{MAX_POSITION:016x}{MAX_POSITION:016x}"]

    for position in future:
        variables = {"id": created["bookId"], "after": position}
        async with Subscription(protocol, ws_url, BOOK_CHANGED, variables) as subscription:
            error = first_error(await subscription.next_message())
        assert error["extensions"]["code"] == "VALIDATION_FAILED", error
        assert error["extensions"]["fields"][0]["field"] == "after"
        assert "newest" in error["message"] or "newest" in error["extensions"]["fields"][0]["message"]


async def test_subscription_after_the_newest_position_is_accepted(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str
) -> None:
    created = await create_book(http, refs)  # its position is the newest (or close to it)
    variables = {"id": created["bookId"], "after": created["position"]}

    async with Subscription(TRANSPORT_WS, ws_url, BOOK_CHANGED, variables) as subscription:
        updated = await update_book(http, created["bookId"], price="19.00")
        change = (await subscription.next_data())["bookChanged"]

    assert change["position"] == updated["position"]


async def test_unknown_ids_still_read_as_missing(http: httpx.AsyncClient) -> None:
    data = await gql(http, "query($id: ID!) { book(id: $id) { id } }", {"id": new_id()})

    assert data == {"book": None}


TOO_MANY_TOKENS = (
    "subscription { catalogChanged { " + "kind " * 2_500 + "} }"
)  # past BOOKWORM_MAX_QUERY_TOKENS
UNFINISHED = "subscription { catalogChanged { kind "


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_document_refused_as_it_is_parsed_is_a_typed_error_over_websockets(
    ws_url: str, protocol: str
) -> None:
    async with Subscription(protocol, ws_url, TOO_MANY_TOKENS) as subscription:
        error = first_error(await subscription.next_message())
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error

    async with Subscription(protocol, ws_url, UNFINISHED) as subscription:
        if protocol == LEGACY_WS:
            assert "Syntax Error" in first_error(await subscription.next_message())["message"]
        else:  # graphql-transport-ws closes the connection on a syntax error, as strawberry does
            with pytest.raises(ConnectionClosed) as closed:
                await subscription.next_message()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
