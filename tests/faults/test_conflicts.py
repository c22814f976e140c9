"""Scenarios 7 and 9: many concurrent writers of one thing, through two API processes.

7. Fifty concurrent updateBook with the same expectedVersion: exactly one wins per version, the others
   get a typed Conflict, and the book's stream holds exactly the winners' events.
9. The same placeOrder twenty times at once with one idempotency key: one order, one OrderPlaced, and
   every answer names that order (a repeat returns the first result unchanged, not an error).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal

import httpx

from tests.e2e.clients import bearer, gql
from tests.faults.cluster import Cluster, admin_token, customer_token
from tests.faults.conftest import Profile, record
from tests.faults.traffic import CREATE_BOOK, REQUEST_TIMEOUT, Refs, make_refs

WRITERS = 50
REPEATS = 20

UPDATE_PRICE = """mutation($input: UpdateBookInput!) { updateBook(input: $input) {
  __typename ... on UpdateBookSuccess { bookId position } ... on UserError { code message } } }"""
HISTORY = "query($id: ID!) { streamHistory(streamId: $id) { version type data } }"
ADDRESS = """mutation { updateBuyerAddress(input: {street: "1 Rue Haute", city: "Lyon", province: "RA"}) {
  __typename } }"""
ADD_ITEM = (
    """mutation($bookId: ID!) { addBasketItem(input: {bookId: $bookId, quantity: 2}) { __typename } }"""
)
MY_BASKET = "{ myBasket { items { bookId } } }"
PLACE_ORDER = """mutation($key: String!) { placeOrder(input: {idempotencyKey: $key}) {
  __typename ... on PlaceOrderSuccess { orderId position } ... on UserError { code message } } }"""


async def checked_out(http: httpx.AsyncClient, limit: float = 60.0) -> None:
    """Wait until the checkout saga has emptied the basket: a repeat now could not place a new order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while (basket := (await gql(http, MY_BASKET))["myBasket"]) and basket["items"]:
        assert loop.time() < deadline, "the checkout saga never emptied the basket"
        await asyncio.sleep(0.1)


def clients(urls: list[str], token: str, count: int) -> list[httpx.AsyncClient]:
    """`count` HTTP clients spread over the API processes (each its own connection)."""
    return [
        httpx.AsyncClient(base_url=urls[n % len(urls)], headers=bearer(token), timeout=REQUEST_TIMEOUT)
        for n in range(count)
    ]


async def close_all(opened: list[httpx.AsyncClient]) -> None:
    await asyncio.gather(*(http.aclose() for http in opened))


async def test_one_update_wins_per_version_and_the_rest_conflict(cluster: Cluster, profile: Profile) -> None:
    apis = [cluster.api("api-1"), cluster.api("api-2")]
    cluster.worker()
    token = admin_token()
    refs = await make_refs(apis[0].url, token)
    writers = clients([api.url for api in apis], token, WRITERS)
    try:
        book = {"name": "Contested", "price": "5.00", "categoryId": refs.category_id,
                "publisherId": refs.publisher_id, "authorIds": [refs.author_id]}  # fmt: skip
        created = (await gql(writers[0], CREATE_BOOK, {"input": book}))["createBook"]
        book_id = created["bookId"]
        rounds = 10 if profile.soak else 3
        winners: list[Decimal] = []
        lost_at_append = 0
        for version in range(1, rounds + 1):
            answers = await asyncio.gather(
                *(update_price(http, book_id, version, price(version, n)) for n, http in enumerate(writers))
            )
            kinds = Counter(kind for kind, _ in answers)
            assert kinds == {"UpdateBookSuccess": 1, "Conflict: CONFLICT": WRITERS - 1}, (version, kinds)
            winners += [
                price(version, n) for n, (kind, _) in enumerate(answers) if kind == "UpdateBookSuccess"
            ]
            # The domain names the version it saw; a writer that read the old one loses at the append.
            lost_at_append += sum(
                kind != "UpdateBookSuccess" and "is at version" not in message for kind, message in answers
            )
        history = (await gql(writers[0], HISTORY, {"id": book_id}))["streamHistory"]
    finally:
        await close_all(writers)
    assert [e["type"] for e in history] == ["BookCreated"] + ["BookUpdated"] * rounds
    assert [e["version"] for e in history] == list(range(1, rounds + 2))
    assert [Decimal(e["data"]["price"]) for e in history[1:]] == winners
    recovered = await cluster.caught_up("catalog")
    verified = await cluster.verify()
    record(
        "7 conflicting updates",
        writers=f"{WRITERS} per version over 2 APIs",
        versions=rounds,
        winners=len(winners),
        conflicts=f"{rounds * (WRITERS - 1)} ({lost_at_append} lost at the append, the rest read the winner)",
        events_written=await cluster.count("SELECT count(*) FROM eventstore.events"),
        events_verified=verified,
        caught_up_after=f"{recovered:.2f} s",
    )


async def fill_basket(url: str, admin: str, buyer: httpx.AsyncClient, refs: Refs) -> None:
    """Create a book and give the buyer an address and a basket holding it: what placeOrder needs."""
    async with httpx.AsyncClient(base_url=url, headers=bearer(admin), timeout=REQUEST_TIMEOUT) as http:
        book = {"name": "Ordered Once", "price": "12.00", "categoryId": refs.category_id,
                "publisherId": refs.publisher_id, "authorIds": [refs.author_id]}  # fmt: skip
        book_id = (await gql(http, CREATE_BOOK, {"input": book}))["createBook"]["bookId"]
    addressed = (await gql(buyer, ADDRESS))["updateBuyerAddress"]
    added = (await gql(buyer, ADD_ITEM, {"bookId": book_id}))["addBasketItem"]
    assert (addressed["__typename"], added["__typename"]) == (
        "UpdateBuyerAddressSuccess",
        "AddBasketItemSuccess",
    )


def price(version: int, writer: int) -> Decimal:
    """A price no other writer of any version sends, so every winner's update is a real change."""
    return Decimal(f"{10 + version * WRITERS + writer}.00")


async def update_price(http: httpx.AsyncClient, book_id: str, version: int, new: Decimal) -> tuple[str, str]:
    """Send one pinned update; return its outcome ("UpdateBookSuccess" or "<type>: <code>") and message."""
    given = {"id": book_id, "price": str(new), "expectedVersion": version}
    result = (await gql(http, UPDATE_PRICE, {"input": given}))["updateBook"]
    if result["__typename"] == "UpdateBookSuccess":
        return result["__typename"], ""
    return f"{result['__typename']}: {result.get('code')}", result.get("message", "")


async def test_one_idempotency_key_places_one_order(cluster: Cluster) -> None:
    apis = [cluster.api("api-1"), cluster.api("api-2")]
    cluster.worker()
    admin = admin_token()
    refs = await make_refs(apis[0].url, admin)
    buyer = clients([api.url for api in apis], customer_token(f"buyer-{uuid.uuid4().hex[:8]}"), REPEATS)
    try:
        await fill_basket(apis[0].url, admin, buyer[0], refs)
        key = f"order-{uuid.uuid4()}"
        answers = await asyncio.gather(*(gql(http, PLACE_ORDER, {"key": key}) for http in buyer))
        placed = [answer["placeOrder"] for answer in answers]
        recovered = await cluster.caught_up("ordering")
        await checked_out(buyer[0])
        again = (await gql(buyer[1], PLACE_ORDER, {"key": key}))["placeOrder"]
    finally:
        await close_all(buyer)
    assert {p["__typename"] for p in placed} == {"PlaceOrderSuccess"}, placed
    assert len({(p["orderId"], p["position"]) for p in placed}) == 1, placed
    order_id = placed[0]["orderId"]
    assert (again["__typename"], again.get("orderId")) == ("PlaceOrderSuccess", order_id), again
    assert await cluster.count("SELECT count(*) FROM eventstore.events WHERE event_type = 'OrderPlaced'") == 1
    assert await cluster.count("SELECT count(*) FROM read.order_view") == 1
    verified = await cluster.verify()
    record(
        "9 one idempotency key",
        requests=f"{REPEATS} concurrent placeOrder over 2 APIs, then 1 more after checkout",
        answers=f"{len(placed) + 1} with order {order_id[:8]}..",
        orders_placed=1,
        events_written=await cluster.count("SELECT count(*) FROM eventstore.events"),
        events_verified=verified,
        caught_up_after=f"{recovered:.2f} s",
    )
