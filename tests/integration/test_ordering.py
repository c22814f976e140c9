"""Buyers and orders against real PostgreSQL: handlers, idempotency, the projection, queries, notices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.commands.bus import CommandBus
from app.commands.results import CommandResult
from app.db import create_pool
from app.domain.catalog import commands as c
from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.domain.ordering import commands as o
from app.events import basket as bev
from app.events.base import Event, Metadata
from app.events.ordering import OrderPlaced
from app.eventstore import START, EventStore, Position
from app.ids import basket_id_of, customer_id_of, new_id
from app.live.notices import ChangeNotice, buyer_orders_topic, order_topic
from app.projections import PROJECTIONS, ProjectionConsumer
from app.projections.ordering import ORDERING
from app.projections.rebuild import rebuild
from app.queries.ordering import OrderingQueries
from app.settings import Settings
from tests.integration.draining import drain
from tests.validation import fields_of

ADMIN = "user:admin"


@dataclass
class Shop:
    """Commands through the real bus, basket events appended as the basket context would, one projector."""

    pool: asyncpg.Pool
    store: EventStore
    bus: CommandBus
    queries: OrderingQueries
    refs: dict[str, Any] = field(default_factory=dict)
    last: Position = START

    async def run(self, command: Any, actor: str = "user:alice", **options: Any) -> CommandResult:
        done = await self.bus.dispatch(command, actor=actor, **options)
        self.last = max(self.last, done.position)
        return done

    async def book(self, name: str = "Dune", price: str = "10.00", sale: str | None = None) -> str:
        if not self.refs:
            self.refs = {
                "category_id": (
                    await self.run(c.CreateCategory(category_id=new_id(), name=new_id()))
                ).entity_id,
                "publisher_id": (
                    await self.run(c.CreatePublisher(publisher_id=new_id(), name=new_id()))
                ).entity_id,
                "author_ids": ((await self.run(c.CreateAuthor(author_id=new_id(), name="Frank"))).entity_id,),
            }
        command = c.CreateBook(
            book_id=new_id(),
            name=name,
            price=Decimal(price),
            price_sale=None if sale is None else Decimal(sale),
            **self.refs,
        )
        return (await self.run(command, actor=ADMIN)).entity_id

    async def basket(self, buyer: str, *events: Event) -> None:
        """Append basket events to the buyer's basket stream, as the basket context records them."""
        basket_id = basket_id_of(buyer)
        version = len(await self.store.read_stream(basket_id))
        async with self.pool.acquire() as conn, conn.transaction():
            position = await self.store.append(
                conn,
                stream_id=basket_id,
                stream_type="Basket",
                expected_version=version,
                events=events,
                metadata=Metadata(actor="test", correlation_id=new_id()),
            )
        self.last = max(self.last, position)

    async def put(self, buyer: str, book: str, quantity: int = 1) -> None:
        added = bev.BasketItemAdded(
            basket_id=basket_id_of(buyer), customer_id=buyer, book_id=book, quantity=quantity
        )
        await self.basket(buyer, added)

    async def address(self, buyer: str, **changes: str) -> CommandResult:
        fields = {"street": "1 Main St", "city": "Springfield", "province": "ON"} | changes
        command = o.UpdateBuyerAddress(buyer_id=buyer, name="Alice", email="alice@example.com", **fields)
        return await self.run(command)

    async def shopper(self, *books: str) -> str:
        """A new buyer with an address and one of each book in the basket."""
        buyer = customer_id_of(new_id())
        await self.address(buyer)
        for book in books:
            await self.put(buyer, book)
        return buyer

    async def place(self, buyer: str, note: str | None = None, **options: Any) -> CommandResult:
        command = o.PlaceOrder(
            order_id=new_id(), buyer_id=buyer, buyer_name="Alice", buyer_email="alice@example.com", note=note
        )
        return await self.run(command, **options)

    async def place_again(self, buyer: str, book: str) -> str:
        """Place an order, then put the book in the basket again: each order takes its own version."""
        order_id = (await self.place(buyer)).entity_id
        await self.put(buyer, book)
        return order_id

    async def project(self) -> list[ChangeNotice]:
        """Run projection batches until everything this shop appended is applied (bounded wait)."""
        consumer = ProjectionConsumer(ORDERING)
        return (await drain(self.pool, self.store, consumer, self.last, limit=200)).notices

    async def stream_types(self, stream_id: str) -> list[str]:
        return [r.event_type for r in await self.store.read_stream(stream_id)]


@pytest.fixture(scope="module")
async def shop(make_settings: Callable[[], Settings]) -> AsyncIterator[Shop]:
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url, size=24)
    store = EventStore(pool)
    yield Shop(pool, store, CommandBus(pool, store), OrderingQueries(pool))
    await pool.close()


# ---- buyers


async def test_an_address_makes_a_buyer_profile(shop: Shop) -> None:
    buyer = customer_id_of(new_id())
    assert await shop.queries.buyer(buyer) is None
    await shop.address(buyer, street="  7 Elm St ")
    await shop.project()
    row = await shop.queries.buyer(buyer)
    assert row is not None
    assert (row.name, row.email, row.address.street, row.address.city, row.version) == (
        "Alice",
        "alice@example.com",
        "7 Elm St",
        "Springfield",
        1,
    )
    again = await shop.address(buyer, street="7 Elm St")
    assert again.position == (await shop.store.read_stream(buyer))[-1].position  # nothing appended
    await shop.address(buyer, city="Shelbyville")
    await shop.project()
    row = await shop.queries.buyer(buyer)
    assert row is not None and (row.address.city, row.version) == ("Shelbyville", 2)


@pytest.mark.parametrize(("street", "city"), [("", ""), ("x" * 101, ""), (" ", "y" * 101)])
async def test_a_bad_address_is_refused_and_appends_nothing(shop: Shop, street: str, city: str) -> None:
    buyer = customer_id_of(new_id())
    with pytest.raises(ValidationError) as raised:
        await shop.address(buyer, street=street, city=city)
    assert set(fields_of(raised.value)) == {"street", "city"}
    assert await shop.store.read_stream(buyer) == []


# ---- placing orders


async def test_an_order_is_built_from_the_basket_with_snapshots(shop: Shop) -> None:
    dune = await shop.book("Dune", "10.00")
    emma = await shop.book("Emma", "20.00", sale="15.50")
    buyer = await shop.shopper(dune)
    await shop.put(buyer, emma, 2)
    done = await shop.place(buyer, note=" leave at the door ")

    (recorded,) = await shop.store.read_stream(done.entity_id)
    event = recorded.event
    assert isinstance(event, OrderPlaced) and recorded.stream_type == "Order"
    assert [(x.book_id, x.name, x.quantity, x.unit_price) for x in event.lines] == [
        (dune, "Dune", 1, Decimal("10.00")),
        (emma, "Emma", 2, Decimal("15.50")),
    ]
    assert (event.total, event.note, event.basket_id, event.street) == (
        Decimal("41.00"),
        "leave at the door",
        basket_id_of(buyer),
        "1 Main St",
    )
    # The order does not touch the basket: the checkout saga empties it.
    assert await shop.stream_types(basket_id_of(buyer)) == ["BasketItemAdded", "BasketItemAdded"]


async def test_an_empty_basket_cannot_be_ordered(shop: Shop) -> None:
    book = await shop.book()
    buyer = await shop.shopper()
    with pytest.raises(ValidationError) as raised:
        await shop.place(buyer)
    assert set(fields_of(raised.value)) == {"basket"}
    await shop.put(buyer, book)
    await shop.basket(buyer, bev.BasketCleared(basket_id=basket_id_of(buyer), customer_id=buyer))
    with pytest.raises(ValidationError):
        await shop.place(buyer)


async def test_a_buyer_without_an_address_cannot_order(shop: Shop) -> None:
    book = await shop.book()
    buyer = customer_id_of(new_id())
    await shop.put(buyer, book)
    order_id = new_id()
    with pytest.raises(ValidationError) as raised:
        await shop.run(
            o.PlaceOrder(order_id=order_id, buyer_id=buyer, buyer_name="B", buyer_email=None, note=None)
        )
    assert set(fields_of(raised.value)) == {"address"}
    assert await shop.store.read_stream(order_id) == []


async def test_a_book_deleted_since_it_was_put_in_the_basket_is_named(shop: Shop) -> None:
    kept, gone = await shop.book("Kept"), await shop.book("Gone")
    buyer = await shop.shopper(kept, gone)
    await shop.run(c.DeleteBook(book_id=gone), actor=ADMIN)
    with pytest.raises(NotFoundError) as raised:
        await shop.place(buyer)
    assert "'Gone'" in raised.value.message and "Kept" not in raised.value.message


async def test_unit_prices_stay_as_they_were_when_the_order_was_placed(shop: Shop) -> None:
    book = await shop.book("Priced", "10.00")
    buyer = await shop.shopper(book)
    first = await shop.place(buyer)
    await shop.run(c.UpdateBook(book_id=book, price=Decimal("30.00")), actor=ADMIN)
    await shop.put(buyer, book)  # a new basket version: one version is ordered once
    second = await shop.place(buyer)
    await shop.project()

    before, after = await shop.queries.order(first.entity_id), await shop.queries.order(second.entity_id)
    assert before is not None and after is not None
    assert (before.lines[0].unit_price, before.total) == (Decimal("10.00"), Decimal("10.00"))
    assert (after.lines[0].unit_price, after.total) == (Decimal("30.00"), Decimal("30.00"))


async def test_twenty_concurrent_placements_with_one_key_make_one_order(shop: Shop) -> None:
    buyer = await shop.shopper(await shop.book())
    key = f"place-{new_id()}"
    results = await asyncio.gather(*(shop.place(buyer, idempotency_key=key) for _ in range(20)))

    assert len({r.entity_id for r in results}) == 1
    assert len({r.position for r in results}) == 1
    placed = await shop.pool.fetchval(
        "SELECT count(*) FROM eventstore.events WHERE event_type = 'OrderPlaced' AND data->>'buyer_id' = $1",
        buyer,
    )
    assert placed == 1


async def test_a_key_is_per_actor(shop: Shop) -> None:
    book = await shop.book()
    buyer = await shop.shopper(book)
    key = f"place-{new_id()}"
    mine = await shop.place(buyer, idempotency_key=key)
    await shop.put(buyer, book)
    theirs = await shop.place(buyer, idempotency_key=key, actor="user:someone-else")
    assert mine.entity_id != theirs.entity_id


async def test_one_basket_version_is_ordered_once(shop: Shop) -> None:
    book = await shop.book()
    buyer = await shop.shopper(book)
    results = await asyncio.gather(*(shop.place(buyer) for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(r, CommandResult) for r in results) == 1, results
    assert sum(isinstance(r, ConflictError) for r in results) == 4, results

    await shop.put(buyer, book)  # the basket changed: it may be ordered again
    await shop.place(buyer)


# ---- status changes


async def test_complete_then_anything_else_is_a_conflict(shop: Shop) -> None:
    buyer = await shop.shopper(await shop.book())
    order_id = (await shop.place(buyer)).entity_id
    await shop.run(o.CompleteOrder(order_id=order_id), actor=ADMIN)
    for command in (
        o.CompleteOrder(order_id=order_id),
        o.CancelOrder(order_id=order_id, requested_by=buyer),
        o.CancelOrder(order_id=order_id, requested_by=None),
    ):
        with pytest.raises(ConflictError):
            await shop.run(command, actor=ADMIN)
    assert await shop.stream_types(order_id) == ["OrderPlaced", "OrderCompleted"]


async def test_the_buyer_cancels_and_then_cannot_cancel_or_complete_again(shop: Shop) -> None:
    buyer = await shop.shopper(await shop.book())
    order_id = (await shop.place(buyer)).entity_id
    await shop.run(o.CancelOrder(order_id=order_id, requested_by=buyer))
    with pytest.raises(ConflictError):
        await shop.run(o.CancelOrder(order_id=order_id, requested_by=buyer))
    with pytest.raises(ConflictError):
        await shop.run(o.CompleteOrder(order_id=order_id), actor=ADMIN)
    assert await shop.stream_types(order_id) == ["OrderPlaced", "OrderCancelled"]


async def test_another_customer_cannot_cancel_and_learns_nothing(shop: Shop) -> None:
    book = await shop.book()
    alice, bob = await shop.shopper(book), await shop.shopper(book)
    order_id = (await shop.place(alice)).entity_id
    with pytest.raises(NotFoundError) as theirs:
        await shop.run(o.CancelOrder(order_id=order_id, requested_by=bob), actor="user:bob")
    missing_id = new_id()
    with pytest.raises(NotFoundError) as missing:
        await shop.run(o.CancelOrder(order_id=missing_id, requested_by=bob), actor="user:bob")
    assert theirs.value.message.replace(order_id, "X") == missing.value.message.replace(missing_id, "X")
    assert await shop.stream_types(order_id) == ["OrderPlaced"]


async def test_an_id_of_another_aggregate_is_not_an_order(shop: Shop) -> None:
    book = await shop.book()
    with pytest.raises(NotFoundError):
        await shop.run(o.CompleteOrder(order_id=book), actor=ADMIN)
    assert await shop.stream_types(book) == ["BookCreated"]


async def test_the_saga_cancels_with_a_reason(shop: Shop) -> None:
    buyer = await shop.shopper(await shop.book())
    order_id = (await shop.place(buyer)).entity_id
    reason = "The basket was already checked out."
    await shop.run(o.CancelOrder(order_id=order_id, requested_by=None, reason=reason), actor="saga:checkout")
    await shop.project()
    row = await shop.queries.order(order_id)
    assert row is not None and (row.status, row.cancel_reason) == ("CANCELLED", reason)


# ---- projection, notices, queries


async def test_the_projection_keeps_orders_and_announces_each_change_twice(shop: Shop) -> None:
    book = await shop.book("Noticed", "12.00")
    buyer = await shop.shopper(book)
    await shop.project()
    placed = await shop.place(buyer, note="gift")
    completed = await shop.run(o.CompleteOrder(order_id=placed.entity_id), actor=ADMIN)
    notices = await shop.project()

    order_id = placed.entity_id
    assert [(n.position, n.topic, n.kind, n.entity, n.entity_id) for n in notices] == [
        (placed.position, order_topic(order_id), "CREATED", "Order", order_id),
        (placed.position, buyer_orders_topic(buyer), "CREATED", "Order", order_id),
        (completed.position, order_topic(order_id), "UPDATED", "Order", order_id),
        (completed.position, buyer_orders_topic(buyer), "UPDATED", "Order", order_id),
    ]
    logged = await shop.pool.fetchval("SELECT count(*) FROM read.changes WHERE entity_id = $1", order_id)
    assert logged == 4
    row = await shop.queries.order(order_id)
    assert row is not None
    assert (row.status, row.buyer_id, row.note, row.total, row.version) == (
        "COMPLETED",
        buyer,
        "gift",
        Decimal("12.00"),
        2,
    )
    assert (row.address.street, row.lines[0].name, row.lines[0].quantity) == ("1 Main St", "Noticed", 1)
    assert row.updated_at > row.created_at


async def test_reapplying_events_changes_nothing_and_announces_nothing(shop: Shop) -> None:
    buyer = await shop.shopper(await shop.book())
    placed = await shop.place(buyer)
    await shop.run(o.CancelOrder(order_id=placed.entity_id, requested_by=buyer))
    await shop.project()
    events = await shop.store.read_stream(placed.entity_id)
    async with shop.pool.acquire() as conn, conn.transaction():
        assert await ProjectionConsumer(ORDERING).apply(conn, events) == []
    row = await shop.queries.order(placed.entity_id)
    assert row is not None and row.status == "CANCELLED"


async def test_an_order_is_invisible_to_another_buyer(shop: Shop) -> None:
    book = await shop.book()
    alice, bob = await shop.shopper(book), await shop.shopper(book)
    order_id = (await shop.place(alice)).entity_id
    await shop.project()
    assert await shop.queries.order(order_id, buyer_id=alice) is not None
    assert await shop.queries.order(order_id, buyer_id=bob) is None
    assert await shop.queries.order(order_id) is not None  # an admin
    assert await shop.queries.order("not-an-id") is None


async def test_orders_list_newest_first_filtered_and_scoped(shop: Shop) -> None:
    book = await shop.book()
    alice, bob = await shop.shopper(book), await shop.shopper(book)
    mine = [await shop.place_again(alice, book) for _ in range(3)]
    theirs = (await shop.place(bob)).entity_id
    await shop.run(o.CancelOrder(order_id=mine[1], requested_by=alice))
    await shop.project()

    page = await shop.queries.list_orders(scope=alice)
    assert [r.id for r in page.nodes] == mine[::-1]
    assert page.total_count == 3
    cancelled = await shop.queries.list_orders(scope=alice, status="CANCELLED")
    assert [r.id for r in cancelled.nodes] == [mine[1]]
    assert (await shop.queries.list_orders(scope=alice, buyer_id=bob)).total_count == 0
    admin_view = await shop.queries.list_orders(buyer_id=bob)
    assert [r.id for r in admin_view.nodes] == [theirs]
    everything = await shop.queries.list_orders(first=100)
    assert {*mine, theirs} <= {r.id for r in everything.nodes}


async def test_orders_page_with_cursors(shop: Shop) -> None:
    book = await shop.book()
    buyer = await shop.shopper(book)
    placed = [await shop.place_again(buyer, book) for _ in range(5)]
    await shop.project()
    first = await shop.queries.list_orders(first=2, scope=buyer)
    second = await shop.queries.list_orders(first=2, after=first.end_cursor, scope=buyer)
    third = await shop.queries.list_orders(first=2, after=second.end_cursor, scope=buyer)
    assert [r.id for p in (first, second, third) for r in p.nodes] == placed[::-1]
    assert (first.has_next_page, third.has_next_page, second.has_previous_page) == (True, False, True)


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        ({"status": "SHIPPED"}, "status"),
        ({"after": "garbage"}, "after"),
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"buyer_id": "nope"}, "buyerId"),
    ],
)
async def test_bad_list_arguments_are_refused(shop: Shop, options: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        await shop.queries.list_orders(**options)
    assert set(fields_of(raised.value)) == {field_name}


async def test_a_rebuild_keeps_buyers_and_orders(shop: Shop) -> None:
    assert PROJECTIONS["ordering"] is ORDERING
    buyer = await shop.shopper(await shop.book())
    order_id = (await shop.place(buyer)).entity_id
    await shop.project()
    before = await shop.queries.order(order_id)
    report = await rebuild(shop.pool, shop.store, "ordering")
    assert report.new_generation == report.old_generation + 1
    assert await shop.queries.order(order_id) == before
    assert await shop.queries.buyer(buyer) is not None
