"""Every runnable example of docs/api.md, sent to a real server as the role it names.

Each example gets a small world of its own, made through the API before it runs: a customer with a
delivery address, a new book in their basket, an order they placed (of another book), and someone
else's feedback on the new book; `$after` is a position from before all of it. The example's variables
take those ids (`$bookId`, `$orderId`, `$feedbackId`, `$after`), or a new author, category or publisher
that nothing refers to (`$authorId`, `$categoryId`, `$publisherId`). Its answer must hold no error,
typed or not, and have the keys of the documented answer at every level.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.identity import ADMIN, CUSTOMER
from tests.doc_examples import API_DOC, Example, compact, examples, shape_differences, user_errors
from tests.e2e.clients import TRANSPORT_WS, Subscription, bearer
from tests.e2e.conftest import CREATE_AUTHOR, CREATE_CATEGORY, CREATE_PUBLISHER, MakeToken
from tests.e2e.operations import CREATE_BOOK, book_input, create_book

pytestmark = pytest.mark.e2e

EXAMPLES = examples(API_DOC)
FAILED = "... on UserError { code message }"
ADDRESS = f"""mutation {{
  updateBuyerAddress(input: {{street: "12 Rue des Lilas", city: "Lyon", province: "Rhône"}}) {{
  __typename ... on UpdateBuyerAddressSuccess {{ position }} {FAILED} }} }}"""
ADD_ITEM = f"""mutation($bookId: ID!) {{ addBasketItem(input: {{bookId: $bookId, quantity: 1}}) {{
  __typename ... on AddBasketItemSuccess {{ position }} {FAILED} }} }}"""
PLACE_ORDER = f"""mutation {{ placeOrder(input: {{}}) {{
  __typename ... on PlaceOrderSuccess {{ orderId position }} {FAILED} }} }}"""
REVIEW = f"""mutation($bookId: ID!) {{ createFeedback(input: {{
  bookId: $bookId, firstName: "Jun", lastName: "Park", rating: 4, comment: "Quietly unsettling."}}) {{
  __typename ... on CreateFeedbackSuccess {{ feedbackId position }} {FAILED} }} }}"""
LATHE = "George Orr dreams, and the world is changed when he wakes."
# How to make a new entity for the variable of its id (which is also the id's field in the payload).
UNREFERENCED = {
    "authorId": (CREATE_AUTHOR, "Eleanor Vance"),
    "categoryId": (CREATE_CATEGORY, "Doc category"),
    "publisherId": (CREATE_PUBLISHER, "Doc publisher"),
}


@pytest.fixture(scope="module")
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as opened:
        yield opened


@pytest.fixture(scope="module")
async def ordered_book(http: httpx.AsyncClient, refs: dict[str, Any]) -> str:
    """The book each world's customer orders (the order takes it out of the basket, not the new book)."""
    book_id: str = (await create_book(http, refs, name="The Dispossessed"))["bookId"]
    return book_id


@dataclass
class World:
    """What one example refers to, made through the API; `last` is the position of the newest write."""

    client: httpx.AsyncClient
    admin: str
    customer: str
    values: dict[str, str] = field(default_factory=dict)
    last: str = ""

    async def write(
        self, token: str, document: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one setup mutation; fail unless it succeeded; return its payload."""
        response = await self.client.post(
            "/graphql", json={"query": document, "variables": variables or {}}, headers=bearer(token)
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        payload: dict[str, Any] = next(iter(response.json()["data"].values()))
        assert payload["__typename"].endswith("Success"), payload
        self.last = payload["position"]
        return payload

    async def value(self, name: str) -> str:
        """The value of the variable `name`: an id of this world, or a new unreferenced entity's."""
        if name not in self.values and name in UNREFERENCED:
            document, label = UNREFERENCED[name]
            variables = {"name": f"{label} {uuid.uuid4().hex[:8]}"}
            self.values[name] = (await self.write(self.admin, document, variables))[name]
        assert name in self.values, f"docs/api.md: the tests have no value for ${name}"
        return self.values[name]


async def build_world(
    client: httpx.AsyncClient, make_token: MakeToken, refs: dict[str, Any], ordered_book: str
) -> World:
    subject = f"alice-{uuid.uuid4().hex[:8]}"
    customer = make_token(subject, name="Alice Moreau", email=f"{subject}@example.com")
    admin = make_token("api-doc-admin", roles=(ADMIN, CUSTOMER), name="Admin")
    world = World(client, admin, customer)
    after = (await world.write(customer, ADDRESS))["position"]
    book = {"input": book_input(refs, name="The Lathe of Heaven", description=LATHE, priceSale=None)}
    book_id = (await world.write(admin, CREATE_BOOK, book))["bookId"]
    await world.write(customer, ADD_ITEM, {"bookId": ordered_book})
    order_id = (await world.write(customer, PLACE_ORDER))["orderId"]
    await world.write(customer, ADD_ITEM, {"bookId": book_id})
    reviewer = make_token(f"{subject}-reviewer", name="Jun Park")
    feedback_id = (await world.write(reviewer, REVIEW, {"bookId": book_id}))["feedbackId"]
    world.values = {"after": after, "bookId": book_id, "orderId": order_id, "feedbackId": feedback_id}
    return world


def token_of(world: World, role: str) -> str | None:
    return {"anonymous": None, "customer": world.customer, "admin": world.admin}[role]


async def answer_of(example: Example, world: World, ws_url: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Send the example as its role; return its answer (of a subscription: its first change)."""
    token = token_of(world, example.role)
    text = example.block.text
    # The read models first reach every write the world made, as a client that made them would ask.
    position = {"Bookworm-Position": world.last}
    if example.kind == "subscription":
        # A subscription checks its entity in the read models before it starts (a just-placed order).
        reached = await world.client.post("/graphql", json={"query": "{ __typename }"}, headers=position)
        assert reached.status_code == 200, reached.text
        async with Subscription(TRANSPORT_WS, ws_url, text, variables, token) as subscription:
            return {"data": await subscription.next_data()}
    headers = position | ({} if token is None else bearer(token))
    response = await world.client.post(
        "/graphql", json={"query": text, "variables": variables}, headers=headers
    )
    answer: dict[str, Any] = response.json()
    shown = compact({k: v for k, v in answer.items() if k != "extensions"})
    assert response.status_code == 200 and "errors" not in answer, f"{example.block.where}:\n{shown}"
    return answer


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.fields[0]}-line{e.block.line}" for e in EXAMPLES])
async def test_the_example_answers_as_documented(
    example: Example,
    client: httpx.AsyncClient,
    ws_url: str,
    make_token: MakeToken,
    refs: dict[str, Any],
    ordered_book: str,
) -> None:
    world = await build_world(client, make_token, refs, ordered_book)
    variables = {name: await world.value(name) for name in example.declared}

    answer = await answer_of(example, world, ws_url, variables)

    where, shown = example.block.where, compact({"data": answer["data"]})
    assert not user_errors(answer["data"]), f"{where}:\n{shown}"
    assert example.response is not None, f"{where} documents no answer; it answered:\n{shown}"
    differences = shape_differences(example.response["data"], answer["data"])
    assert not differences, f"{where}: " + "; ".join(differences) + f"\nit answered:\n{shown}"
