"""Feedback over real HTTP and websockets: who may do what, ratings on books, live feedback, bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.ids import new_id
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, Subscription, bearer, gql
from tests.e2e.conftest import MakeToken
from tests.e2e.operations import BOOK, ERRORS, create_book

pytestmark = pytest.mark.e2e

FEEDBACK_FIELDS = "id bookId firstName lastName comment rating createdAt"

CREATE_FEEDBACK = f"""
mutation($input: CreateFeedbackInput!) {{ createFeedback(input: $input) {{
  __typename
  ... on CreateFeedbackSuccess {{ feedbackId position feedback {{ {FEEDBACK_FIELDS} }} }}
  {ERRORS}
}} }}"""

DELETE_FEEDBACK = f"""
mutation($id: ID!) {{ deleteFeedback(input: {{feedbackId: $id}}) {{
  __typename
  ... on DeleteFeedbackSuccess {{ feedbackId position feedback {{ id }} }}
  {ERRORS}
}} }}"""

FEEDBACKS = f"""
query($bookId: ID!, $first: Int, $after: String, $orderBy: FeedbackOrderBy) {{
  feedbacks(bookId: $bookId, first: $first, after: $after, orderBy: $orderBy) {{
    totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {FEEDBACK_FIELDS} }} }}
  }} }}"""

FEEDBACK_ADDED = f"""subscription($bookId: ID!, $after: String) {{
  feedbackAdded(bookId: $bookId, after: $after) {{
    kind position feedbackId bookId feedback {{ {FEEDBACK_FIELDS} }} }} }}"""


def feedback_input(book_id: str, **overrides: Any) -> dict[str, Any]:
    given = {"bookId": book_id, "firstName": "Ann", "lastName": "Leckie", "comment": "Superb.", "rating": 5}
    return {**given, **overrides}


async def create_feedback(
    client: httpx.AsyncClient, book_id: str, token: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """Create feedback as `client`'s customer, or as the customer `token` signs in."""
    variables = {"input": feedback_input(book_id, **overrides)}
    headers = bearer(token) if token else None
    result: dict[str, Any] = (await gql(client, CREATE_FEEDBACK, variables, headers))["createFeedback"]
    return result


async def delete_feedback(client: httpx.AsyncClient, feedback_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, DELETE_FEEDBACK, {"id": feedback_id}))["deleteFeedback"]
    return result


async def feedbacks(client: httpx.AsyncClient, book_id: str, **arguments: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, FEEDBACKS, {"bookId": book_id, **arguments}))["feedbacks"]
    return result


async def book_rating(client: httpx.AsyncClient, book_id: str, position: str) -> tuple[float, int]:
    """The book's averageRating and totalReviews once the catalog has applied `position`."""
    book = (await gql(client, BOOK, {"id": book_id}, headers={"Bookworm-Position": position}))["book"]
    return book["averageRating"], book["totalReviews"]


# ---- who may do what


async def test_a_customer_creates_feedback_and_anyone_lists_it(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]

    created = await create_feedback(alice_http, book, firstName=" Ann ", comment="  Superb.  ")

    assert created["__typename"] == "CreateFeedbackSuccess", created
    feedback = created["feedback"]
    assert feedback["id"] == created["feedbackId"]
    assert (feedback["bookId"], feedback["firstName"], feedback["comment"], feedback["rating"]) == (
        book,
        "Ann",
        "Superb.",
        5,
    )
    listed = await feedbacks(anon_http, book)
    assert listed["totalCount"] == 1
    assert [e["node"] for e in listed["edges"]] == [feedback]


async def test_an_anonymous_caller_may_not_create_feedback(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]

    refused = await create_feedback(anon_http, book)
    # Bad input from an anonymous caller is refused for who it is, before what it says.
    refused_bad = await create_feedback(anon_http, book, rating=9)

    assert refused["__typename"] == refused_bad["__typename"] == "Forbidden", (refused, refused_bad)
    assert refused["code"] == "FORBIDDEN"
    assert (await feedbacks(anon_http, book))["totalCount"] == 0


async def test_only_an_admin_deletes_feedback(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, bob_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    created = await create_feedback(alice_http, book)

    for customer in (alice_http, bob_http):
        refused = await delete_feedback(customer, created["feedbackId"])
        assert refused["__typename"] == "Forbidden", refused
    deleted = await delete_feedback(http, created["feedbackId"])
    again = await delete_feedback(http, created["feedbackId"])

    assert deleted["__typename"] == "DeleteFeedbackSuccess", deleted
    assert deleted["feedbackId"] == created["feedbackId"] and deleted["feedback"] is None
    assert again["__typename"] == "NotFound", again
    assert (await feedbacks(alice_http, book))["totalCount"] == 0


async def test_one_feedback_per_customer_and_book(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    first = await create_feedback(alice_http, book, firstName="Ann", lastName="Leckie")

    duplicate = await create_feedback(alice_http, book, firstName="Someone", lastName="Else", rating=1)

    assert duplicate["__typename"] == "Conflict", duplicate
    assert "already reviewed this book" in duplicate["message"], duplicate
    await delete_feedback(http, first["feedbackId"])
    welcome = await create_feedback(alice_http, book, firstName="Someone", lastName="Else", rating=1)
    assert welcome["__typename"] == "CreateFeedbackSuccess", welcome


async def test_one_customer_under_many_names_leaves_one_review(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    first = await create_feedback(alice_http, book, firstName="Reader 0", rating=5)

    names = [f"Reader {i}" for i in range(1, 30)]
    others = [await create_feedback(alice_http, book, firstName=name, rating=0) for name in names]

    assert first["__typename"] == "CreateFeedbackSuccess", first
    assert {o["__typename"] for o in others} == {"Conflict"}, others
    assert (await feedbacks(anon_http, book))["totalCount"] == 1
    assert await book_rating(anon_http, book, first["position"]) == (5.0, 1)


async def test_a_name_taken_by_another_customer_does_not_block_the_real_reader(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, bob_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    squat = await create_feedback(alice_http, book, firstName="Bob", lastName="Smith", rating=0)

    real = await create_feedback(bob_http, book, firstName="Bob", lastName="Smith", rating=4)

    assert squat["__typename"] == "CreateFeedbackSuccess", squat
    assert real["__typename"] == "CreateFeedbackSuccess", real
    assert real["feedback"]["firstName"] == "Bob", real


@pytest.mark.parametrize("first_name", ["Al\u200bice", "\uff21lice", "\u2060Alice\ufeff", " Alice\u200d "])
async def test_look_alike_names_are_shown_normalised(
    http: httpx.AsyncClient, make_token: MakeToken, refs: dict[str, Any], first_name: str
) -> None:
    book = (await create_book(http, refs))["bookId"]

    token = make_token(new_id())
    created = await create_feedback(http, book, token, firstName=first_name, lastName="\uff33mith")

    assert created["__typename"] == "CreateFeedbackSuccess", created
    assert (created["feedback"]["firstName"], created["feedback"]["lastName"]) == ("Alice", "Smith")


# ---- the book's rating


async def test_average_rating_and_total_reviews_follow_creates_and_deletes(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, make_token: MakeToken, refs: dict[str, Any]
) -> None:
    created = await create_book(http, refs)
    book = created["bookId"]
    assert await book_rating(anon_http, book, created["position"]) == (0.0, 0)

    done = [
        await create_feedback(http, book, make_token(new_id()), firstName=name, rating=rating)
        for name, rating in (("A", 5), ("B", 4), ("C", 4))
    ]
    assert await book_rating(anon_http, book, done[-1]["position"]) == (13 / 3, 3)

    removed = await delete_feedback(http, done[0]["feedbackId"])
    assert await book_rating(anon_http, book, removed["position"]) == (4.0, 2)

    for feedback in done[1:]:
        removed = await delete_feedback(http, feedback["feedbackId"])
    assert await book_rating(anon_http, book, removed["position"]) == (0.0, 0)


async def test_feedbacks_page_newest_first_and_by_rating(
    http: httpx.AsyncClient, anon_http: httpx.AsyncClient, make_token: MakeToken, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    ids = [
        (await create_feedback(http, book, make_token(new_id()), firstName=f"Reader {i}", rating=rating))[
            "feedbackId"
        ]
        for i, rating in enumerate((2, 5, 3))
    ]

    page = await feedbacks(anon_http, book, first=2)
    rest = await feedbacks(anon_http, book, first=2, after=page["pageInfo"]["endCursor"])
    by_rating = await feedbacks(anon_http, book, orderBy="RATING")

    assert [e["node"]["id"] for e in page["edges"] + rest["edges"]] == ids[::-1]
    assert page["totalCount"] == 3
    assert (page["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasNextPage"]) == (True, False)
    assert [e["node"]["rating"] for e in by_rating["edges"]] == [5, 3, 2]


# ---- live


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_feedback_added_sees_new_feedback(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, protocol: str
) -> None:
    created = await create_book(http, refs)
    variables = {"bookId": created["bookId"], "after": created["position"]}

    async with Subscription(protocol, ws_url, FEEDBACK_ADDED, variables) as subscription:
        feedback = await create_feedback(alice_http, created["bookId"], rating=3)
        change = (await subscription.next_data())["feedbackAdded"]

    assert (change["kind"], change["position"], change["feedbackId"], change["bookId"]) == (
        "CREATED",
        feedback["position"],
        feedback["feedbackId"],
        created["bookId"],
    )
    assert change["feedback"]["rating"] == 3


async def test_feedback_on_an_unknown_book_is_removed_again(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str
) -> None:
    start = await create_book(http, refs)  # only for a position to replay from
    unknown = new_id()
    variables = {"bookId": unknown, "after": start["position"]}

    async with Subscription(TRANSPORT_WS, ws_url, FEEDBACK_ADDED, variables) as subscription:
        feedback = await create_feedback(alice_http, unknown)
        assert feedback["__typename"] == "CreateFeedbackSuccess", feedback
        added = (await subscription.next_data())["feedbackAdded"]
        removed = (await subscription.next_data())["feedbackAdded"]

    assert (added["kind"], added["feedbackId"]) == ("CREATED", feedback["feedbackId"])
    assert (removed["kind"], removed["feedbackId"]) == ("DELETED", feedback["feedbackId"])
    assert removed["feedback"] is None
    assert (await feedbacks(alice_http, unknown))["totalCount"] == 0


# ---- bad input


@pytest.mark.parametrize(
    ("overrides", "typename", "field"),
    [
        ({"rating": -1}, "ValidationFailed", "rating"),
        ({"rating": 6}, "ValidationFailed", "rating"),
        ({"firstName": ""}, "ValidationFailed", "firstName"),
        ({"firstName": "   "}, "ValidationFailed", "firstName"),
        ({"firstName": "\u200b\u2060\ufeff"}, "ValidationFailed", "firstName"),
        ({"lastName": ""}, "ValidationFailed", "lastName"),
        ({"lastName": "x" * 51}, "ValidationFailed", "lastName"),
        ({"firstName": "x" * 51}, "ValidationFailed", "firstName"),
        ({"comment": "x" * 1001}, "ValidationFailed", "comment"),
        ({"bookId": "not-an-id"}, "ValidationFailed", "bookId"),
        ({"idempotencyKey": "k" * 201}, "ValidationFailed", "idempotencyKey"),
    ],
)
async def test_invalid_feedback_is_refused_and_nothing_changes(
    http: httpx.AsyncClient,
    alice_http: httpx.AsyncClient,
    refs: dict[str, Any],
    overrides: dict[str, Any],
    typename: str,
    field: str,
) -> None:
    book = (await create_book(http, refs))["bookId"]

    result = await create_feedback(alice_http, book, **overrides)

    assert result["__typename"] == typename, result
    assert result["message"] and result["code"] == "VALIDATION_FAILED"
    assert field in [f["field"] for f in result["fields"]], result
    await _nothing_changed(http, alice_http, book)


async def test_a_rating_that_is_not_an_int_is_refused_by_graphql(
    http: httpx.AsyncClient, alice_http: httpx.AsyncClient, refs: dict[str, Any]
) -> None:
    book = (await create_book(http, refs))["bookId"]
    for rating in (2.5, "4", None):
        body = {"query": CREATE_FEEDBACK, "variables": {"input": feedback_input(book, rating=rating)}}
        response = await alice_http.post("/graphql", json=body)
        assert response.json()["errors"], response.text
        assert "data" not in response.json() or response.json()["data"] is None
    await _nothing_changed(http, alice_http, book)


async def test_bad_ids_are_refused(http: httpx.AsyncClient, anon_http: httpx.AsyncClient) -> None:
    deleted = await delete_feedback(http, "nope")
    unknown = await delete_feedback(http, new_id())
    listed = await anon_http.post("/graphql", json={"query": FEEDBACKS, "variables": {"bookId": "nope"}})

    assert deleted["__typename"] == "ValidationFailed" and deleted["fields"][0]["field"] == "feedbackId"
    assert unknown["__typename"] == "NotFound", unknown
    assert listed.json()["errors"], listed.text


async def _nothing_changed(http: httpx.AsyncClient, client: httpx.AsyncClient, book: str) -> None:
    """A valid feedback made after the bad one is the book's only feedback and only review."""
    probe = await create_feedback(client, book, firstName="Probe", rating=2)
    assert probe["__typename"] == "CreateFeedbackSuccess", probe
    assert (await feedbacks(client, book))["totalCount"] == 1  # probe.feedback waited for the rating model
    assert await book_rating(http, book, probe["position"]) == (2.0, 1)
