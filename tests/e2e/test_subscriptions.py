"""Live subscriptions over both websocket protocols, including resume with `after:`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.db import create_pool
from app.eventstore.position import Position
from app.projections.status import purge_changes
from app.settings import Settings
from tests.e2e.clients import LEGACY_WS, TRANSPORT_WS, Subscription, gql
from tests.e2e.conftest import CREATE_AUTHOR
from tests.e2e.operations import create_book, update_book

pytestmark = pytest.mark.e2e

BOOK_CHANGED = """subscription($id: ID!, $after: String) {
  bookChanged(id: $id, after: $after) { kind position bookId book { id price version } } }"""
CATALOG_CHANGED = """subscription($after: String) {
  catalogChanged(after: $after) { kind position entity entityId } }"""


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_book_changed_receives_an_update(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, protocol: str
) -> None:
    created = await create_book(http, refs)
    variables = {"id": created["bookId"], "after": created["position"]}

    async with Subscription(protocol, ws_url, BOOK_CHANGED, variables) as subscription:
        updated = await update_book(http, created["bookId"], price="20.00")
        change = (await subscription.next_data())["bookChanged"]

    assert change["kind"] == "UPDATED"
    assert change["position"] == updated["position"]
    assert change["bookId"] == created["bookId"]
    assert change["book"]["price"] == "20.00"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_catalog_changed_sees_creations(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, protocol: str
) -> None:
    start = await create_book(http, refs, name="Before the subscription")

    async with Subscription(protocol, ws_url, CATALOG_CHANGED, {"after": start["position"]}) as subscription:
        author = (await gql(http, CREATE_AUTHOR, {"name": f"Author via {protocol}"}))["createAuthor"]
        book = await create_book(http, refs, name="Seen by catalogChanged")
        changes = [(await subscription.next_data())["catalogChanged"]]
        while changes[-1]["entityId"] != book["bookId"] and len(changes) < 20:
            changes.append((await subscription.next_data())["catalogChanged"])

    # Other rows a creation touches (a category's book count) may be announced too.
    creations = [c for c in changes if c["kind"] == "CREATED"]
    assert [(c["kind"], c["entity"], c["entityId"], c["position"]) for c in creations] == [
        ("CREATED", "Author", author["authorId"], author["position"]),
        ("CREATED", "Book", book["bookId"], book["position"]),
    ]


async def test_reconnecting_with_after_receives_exactly_what_was_missed(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str
) -> None:
    created = await create_book(http, refs)
    book_id = created["bookId"]
    variables = {"id": book_id, "after": created["position"]}
    async with Subscription(TRANSPORT_WS, ws_url, BOOK_CHANGED, variables) as subscription:
        seen = await update_book(http, book_id, price="21.00")
        assert (await subscription.next_data())["bookChanged"]["position"] == seen["position"]

    missed = [await update_book(http, book_id, price=price) for price in ("22.00", "23.00")]

    variables = {"id": book_id, "after": seen["position"]}
    async with Subscription(LEGACY_WS, ws_url, BOOK_CHANGED, variables) as subscription:
        replayed = [(await subscription.next_data())["bookChanged"] for _ in missed]
        live = await update_book(http, book_id, price="24.00")
        after_replay = (await subscription.next_data())["bookChanged"]

    assert [c["position"] for c in replayed] == [m["position"] for m in missed]
    assert all(c["kind"] == "UPDATED" for c in replayed)
    assert after_replay["position"] == live["position"]
    assert after_replay["book"]["price"] == "24.00"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize(
    ("variables", "field"),
    [({"id": "not-an-id"}, "id"), ({"id": "0190f3c2-7d1e-7a3b-9c4d-5e6f708192a3", "after": "nope"}, "after")],
)
async def test_bad_subscription_arguments_give_a_clear_error(
    ws_url: str, protocol: str, variables: dict[str, Any], field: str
) -> None:
    async with Subscription(protocol, ws_url, BOOK_CHANGED, variables) as subscription:
        message = await subscription.next_message()

    # Both protocols refuse the operation itself (an "error" message), before any event is sent.
    assert message["type"] == "error", message
    # graphql-transport-ws sends the list of errors; legacy graphql-ws sends the first error alone.
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    assert errors[0]["extensions"]["code"] == "VALIDATION_FAILED", message
    assert errors[0]["extensions"]["fields"][0]["field"] == field


async def purge_up_to(settings: Settings, cursor: str) -> None:
    """Age the server's read.changes rows up to a position past the retention period, then purge them."""
    position = Position.parse(cursor)
    pool = await create_pool(settings.database_url or "")
    try:
        await pool.execute(
            """UPDATE read.changes SET recorded_at = now() - interval '30 days'
               WHERE (transaction_id, global_position) <= ($1, $2)""",
            position.transaction_id,
            position.global_position,
        )
        await purge_changes(pool, settings.changes_retention_days)
    finally:
        await pool.close()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_resuming_from_a_purged_position_is_refused_with_resume_expired(
    http: httpx.AsyncClient, refs: dict[str, Any], ws_url: str, e2e_settings: Settings, protocol: str
) -> None:
    created = await create_book(http, refs)
    updated = await update_book(http, created["bookId"], price="30.00")
    assert updated["book"]["price"] == "30.00"  # read your writes: its read.changes row is written
    await purge_up_to(e2e_settings, updated["position"])

    variables = {"id": created["bookId"], "after": created["position"]}
    async with Subscription(protocol, ws_url, BOOK_CHANGED, variables) as subscription:
        message = await subscription.next_message()

    assert message["type"] == "error", message
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    assert errors[0]["extensions"] == {"code": "RESUME_EXPIRED"}, message
    assert "subscribe again without `after`" in errors[0]["message"]
