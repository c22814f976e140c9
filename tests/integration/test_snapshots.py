"""Snapshots on a real PostgreSQL: loads equal a replay, bad ones are ignored, verify finds wrong ones."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.commands import snapshots
from app.commands.bus import CommandBus
from app.commands.snapshots import Snapshotted
from app.commands.streams import Context, Loaded, load_snapshotted
from app.domain.basket import commands as b
from app.domain.catalog import commands as c
from app.domain.ordering import commands as o
from app.events.base import Metadata
from app.eventstore import EventStore
from app.ids import basket_id_of, new_id
from app.projections.verify import report_snapshots, verify_snapshots

EVERY = 5
ACTOR = "tester"


@pytest.fixture(scope="module")
def bus(pool: asyncpg.Pool, event_store: EventStore) -> CommandBus:
    return CommandBus(pool, event_store, snapshot_every=EVERY)


@pytest.fixture(scope="module")
async def books(bus: CommandBus) -> list[str]:
    category, publisher, author = new_id(), new_id(), new_id()
    await bus.dispatch(c.CreateCategory(category_id=category, name=f"C {category[-12:]}"), actor=ACTOR)
    await bus.dispatch(c.CreatePublisher(publisher_id=publisher, name=f"P {publisher[-12:]}"), actor=ACTOR)
    await bus.dispatch(c.CreateAuthor(author_id=author, name="A"), actor=ACTOR)
    ids = []
    for number in range(2):
        book = c.CreateBook(
            book_id=new_id(),
            name=f"Book {number}",
            price=Decimal("10"),
            category_id=category,
            publisher_id=publisher,
            author_ids=(author,),
        )
        ids.append((await bus.dispatch(book, actor=ACTOR)).entity_id)
    return ids


async def shop(bus: CommandBus, books: list[str], customer: str, rounds: int) -> None:
    """Put books in and take them out again: two events a round."""
    for _ in range(rounds):
        await bus.dispatch(b.AddBasketItem(customer_id=customer, book_id=books[0], quantity=1), actor=ACTOR)
        await bus.dispatch(b.RemoveBasketItem(customer_id=customer, book_id=books[0]), actor=ACTOR)
    await bus.dispatch(b.AddBasketItem(customer_id=customer, book_id=books[1], quantity=2), actor=ACTOR)


async def load(
    pool: asyncpg.Pool, store: EventStore, stream_id: str, kind: Snapshotted[Any], every: int
) -> Loaded[Any]:
    async with pool.acquire() as conn:
        ctx = Context(conn, store, Metadata(actor=ACTOR, correlation_id=new_id()), snapshot_every=every)
        return await load_snapshotted(ctx, stream_id, kind)


async def snapshot_row(pool: asyncpg.Pool, stream_id: str, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT version, schema_version, state FROM eventstore.snapshots WHERE stream_id = $1 AND name = $2",
        stream_id,
        name,
    )


async def test_a_basket_load_from_its_snapshot_equals_a_full_replay(
    bus: CommandBus, pool: asyncpg.Pool, event_store: EventStore, books: list[str]
) -> None:
    customer = new_id()
    basket_id = basket_id_of(customer)
    await shop(bus, books, customer, rounds=6)  # 13 events
    row = await snapshot_row(pool, basket_id, "Basket")
    assert row is not None and EVERY <= row["version"] < 13
    with_snapshot = await load(pool, event_store, basket_id, snapshots.BASKET, EVERY)
    replayed = await load(pool, event_store, basket_id, snapshots.BASKET, 0)
    assert with_snapshot == replayed and replayed.version == 13
    await pool.execute("DELETE FROM eventstore.snapshots WHERE stream_id = $1", basket_id)
    assert await load(pool, event_store, basket_id, snapshots.BASKET, EVERY) == replayed


@pytest.mark.parametrize(
    "change",
    [
        "state = '{\"lines\": 3}'::jsonb",  # does not read back
        "version = 1000",  # beyond the stream
        'schema_version = 0, state = \'{"lines": [["x", 7]]}\'::jsonb',  # an older shape
    ],
)
async def test_an_unusable_snapshot_is_ignored_and_replaced(
    bus: CommandBus,
    pool: asyncpg.Pool,
    event_store: EventStore,
    books: list[str],
    change: str,
) -> None:
    customer = new_id()
    basket_id = basket_id_of(customer)
    await shop(bus, books, customer, rounds=3)  # 7 events
    await pool.execute(f"UPDATE eventstore.snapshots SET {change} WHERE stream_id = $1", basket_id)
    replayed = await load(pool, event_store, basket_id, snapshots.BASKET, 0)
    assert await load(pool, event_store, basket_id, snapshots.BASKET, EVERY) == replayed
    await bus.dispatch(b.RemoveBasketItem(customer_id=customer, book_id=books[1]), actor=ACTOR)
    row = await snapshot_row(pool, basket_id, "Basket")
    assert row is not None and (row["version"], row["schema_version"]) == (8, 1)
    assert json.loads(row["state"])["lines"] == []


async def test_verify_reports_a_wrong_snapshot(
    bus: CommandBus, pool: asyncpg.Pool, event_store: EventStore, books: list[str]
) -> None:
    customer = new_id()
    basket_id = basket_id_of(customer)
    await shop(bus, books, customer, rounds=3)
    before = await verify_snapshots(pool, event_store)
    assert before.ok and before.checked >= 1
    wrong = json.dumps({"lines": [[books[0], 7]], "handled_orders": []})
    await pool.execute(
        "UPDATE eventstore.snapshots SET state = $2::jsonb WHERE stream_id = $1", basket_id, wrong
    )
    try:
        check = await verify_snapshots(pool, event_store)
        assert [(d.name, d.stream_id) for d in check.differences] == [("Basket", basket_id)]
        assert "a replay gives" in check.differences[0].problem
        lines = report_snapshots(check)
        assert lines[0].startswith("snapshots: 1 differences") and basket_id in lines[1]
    finally:
        await pool.execute("DELETE FROM eventstore.snapshots WHERE stream_id = $1", basket_id)
    assert (await verify_snapshots(pool, event_store)).ok


async def test_buyer_and_ordering_keep_their_own_snapshots(
    bus: CommandBus, pool: asyncpg.Pool, event_store: EventStore, books: list[str]
) -> None:
    customer = new_id()
    for number in range(EVERY + 1):
        address = o.UpdateBuyerAddress(
            buyer_id=customer,
            name="Ann",
            email=None,
            street=f"{number} Rue Haute",
            city="Lyon",
            province="RA",
        )
        await bus.dispatch(address, actor=ACTOR)
    await shop(bus, books, customer, rounds=3)
    order = o.PlaceOrder(order_id=new_id(), buyer_id=customer, buyer_name="Ann", buyer_email=None, note=None)
    await bus.dispatch(order, actor=ACTOR)
    buyer_row = await snapshot_row(pool, customer, "Buyer")
    lines_row = await snapshot_row(pool, basket_id_of(customer), "ordering.BasketLines")
    assert buyer_row is not None and buyer_row["version"] == EVERY
    assert lines_row is not None and lines_row["version"] == 7
    assert json.loads(lines_row["state"]) == {"lines": [[books[1], 2]]}
    for stream_id, kind in ((customer, snapshots.BUYER), (basket_id_of(customer), snapshots.BASKET_LINES)):
        replayed = await load(pool, event_store, stream_id, kind, 0)
        assert await load(pool, event_store, stream_id, kind, EVERY) == replayed
    assert (await verify_snapshots(pool, event_store)).ok


async def test_a_snapshot_taken_in_a_callers_transaction_rolls_back_with_it(
    bus: CommandBus, pool: asyncpg.Pool, books: list[str]
) -> None:
    customer = new_id()
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        for _ in range(EVERY):
            add = b.AddBasketItem(customer_id=customer, book_id=books[0], quantity=1)
            await bus.dispatch(add, actor=ACTOR, conn=conn)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM eventstore.snapshots WHERE stream_id = $1", basket_id_of(customer)
            )
            == 1
        )
        await transaction.rollback()
    assert await snapshot_row(pool, basket_id_of(customer), "Basket") is None
