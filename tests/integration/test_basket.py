"""Baskets against real PostgreSQL (and Redis for the checkout consumer): handlers, projection, checkout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from app.bus.consumer import ConsumerRunner
from app.bus.relay import Relay
from app.commands.bus import CommandBus
from app.commands.results import CommandResult
from app.db import create_pool
from app.domain.basket import commands as b
from app.domain.catalog import commands as c
from app.domain.errors import ConflictError, NotFoundError, ValidationError
from app.events.base import Metadata
from app.events.basket import BasketCheckedOut, CheckedOutLine
from app.events.finance import CheckoutRequested
from app.eventstore import START, EventStore, Position, RecordedEvent
from app.ids import basket_id_of, checkout_id_of, customer_id_of, new_id
from app.live.notices import ChangeNotice, basket_topic
from app.processes.basket_checkout import ACTOR, BasketCheckout
from app.projections import ProjectionConsumer
from app.projections.basket import BASKET
from app.projections.rebuild import rebuild
from app.projections.verify import verify
from app.queries.basket import BasketQueries
from app.settings import Settings
from tests.integration.bus_support import BusEnv, bus_env, wait_until
from tests.integration.draining import drain

ADMIN = "user:admin"


@dataclass
class Shop:
    pool: asyncpg.Pool
    store: EventStore
    bus: CommandBus
    queries: BasketQueries
    projection: ProjectionConsumer
    last: Position = START  # of the last command that appended anything

    async def run(self, command: Any, actor: str = "user:alice") -> CommandResult:
        done = await self.bus.dispatch(command, actor=actor)
        self.last = max(self.last, done.position)
        return done

    async def book(self, price: str = "10.00", sale: str | None = None) -> str:
        book_id = await new_book(self.bus, price, sale)
        self.last = max(self.last, (await self.store.read_stream(book_id))[-1].position)
        return book_id

    async def add(self, customer: str, book: str, quantity: int = 1) -> CommandResult:
        return await self.run(b.AddBasketItem(customer_id=customer, book_id=book, quantity=quantity))

    async def events_of(self, customer: str) -> list[RecordedEvent]:
        return await self.store.read_stream(basket_id_of(customer))

    async def project(self) -> list[ChangeNotice]:
        """Run projection batches until it passed the last command; return the notices they made."""
        return (await drain(self.pool, self.store, self.projection, self.last)).notices


async def new_book(bus: CommandBus, price: str = "10.00", sale: str | None = None) -> str:
    """Create a book (with its category, publisher and author) as an admin; return its id."""

    async def run(command: Any) -> str:
        return (await bus.dispatch(command, actor=ADMIN)).entity_id

    command = c.CreateBook(
        book_id=new_id(),
        name="Kindred",
        price=Decimal(price),
        price_sale=None if sale is None else Decimal(sale),
        category_id=await run(c.CreateCategory(category_id=new_id(), name=f"C {new_id()}")),
        publisher_id=await run(c.CreatePublisher(publisher_id=new_id(), name=f"P {new_id()}")),
        author_ids=(await run(c.CreateAuthor(author_id=new_id(), name="Octavia E. Butler")),),
    )
    return await run(command)


@pytest.fixture(scope="module")
async def shop(make_settings: Callable[[], Settings]) -> AsyncIterator[Shop]:
    """A database of this module's own; each test uses customers and books of its own."""
    settings = make_settings()
    assert settings.database_url
    pool = await create_pool(settings.database_url)
    store = EventStore(pool)
    yield Shop(pool, store, CommandBus(pool, store), BasketQueries(pool), ProjectionConsumer(BASKET))
    await pool.close()


def customer() -> str:
    return customer_id_of(f"sub-{new_id()}")


def basket_notices(notices: list[ChangeNotice], who: str) -> list[tuple[str, str]]:
    return [(n.kind, n.entity_id) for n in notices if n.topic == basket_topic(who)]


# ---- handlers


async def test_add_records_the_line_on_the_customers_basket_stream(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    first = await shop.add(alice, book, 2)
    second = await shop.add(alice, book, 3)

    assert first.entity_id == second.entity_id == basket_id_of(alice)
    assert second.position > first.position
    events = await shop.events_of(alice)
    assert [(e.stream_type, e.event_type, e.data["quantity"]) for e in events] == [
        ("Basket", "BasketItemAdded", 2),
        ("Basket", "BasketItemAdded", 5),
    ]
    assert events[0].metadata["actor"] == "user:alice"


async def test_unknown_and_deleted_books_are_not_found_and_change_nothing(shop: Shop) -> None:
    alice, deleted = customer(), await shop.book()
    await shop.add(alice, deleted)
    await shop.run(c.DeleteBook(book_id=deleted), ADMIN)
    category = await shop.run(c.CreateCategory(category_id=new_id(), name=f"C {new_id()}"), ADMIN)

    # A category's id is an id the event store knows, but not a book's.
    for book_id in (new_id(), deleted, category.entity_id):
        with pytest.raises(NotFoundError, match="bookId"):
            await shop.add(alice, book_id)
    with pytest.raises(NotFoundError, match="bookId"):
        await shop.run(b.UpdateBasketItem(customer_id=alice, book_id=deleted, quantity=2))
    assert len(await shop.events_of(alice)) == 1
    # A line whose book was deleted can still be removed.
    await shop.run(b.RemoveBasketItem(customer_id=alice, book_id=deleted))
    assert len(await shop.events_of(alice)) == 2


@pytest.mark.parametrize("quantity", [0, -1, 100])
async def test_quantities_outside_1_to_99_are_refused(shop: Shop, quantity: int) -> None:
    alice, book = customer(), await shop.book()
    with pytest.raises(ValidationError) as added:
        await shop.add(alice, book, quantity)
    await shop.add(alice, book, 1)
    with pytest.raises(ValidationError) as updated:
        await shop.run(b.UpdateBasketItem(customer_id=alice, book_id=book, quantity=quantity))

    assert [f.field for f in added.value.fields] == [f.field for f in updated.value.fields] == ["quantity"]
    assert len(await shop.events_of(alice)) == 1


async def test_a_line_holds_at_most_99(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    await shop.add(alice, book, 99)
    with pytest.raises(ValidationError, match="not valid"):
        await shop.add(alice, book, 1)
    assert [e.data["quantity"] for e in await shop.events_of(alice)] == [99]


async def test_invalid_quantity_is_reported_before_an_unknown_book(shop: Shop) -> None:
    with pytest.raises(ValidationError):
        await shop.add(customer(), new_id(), 0)


async def test_update_and_remove_of_a_book_not_in_the_basket_are_not_found(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    with pytest.raises(NotFoundError, match="not in the basket"):
        await shop.run(b.UpdateBasketItem(customer_id=alice, book_id=book, quantity=2))
    with pytest.raises(NotFoundError, match="not in the basket"):
        await shop.run(b.RemoveBasketItem(customer_id=alice, book_id=book))
    assert await shop.events_of(alice) == []


async def test_clearing_an_empty_basket_appends_nothing(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    never_used = await shop.run(b.ClearBasket(customer_id=alice))
    assert never_used == CommandResult(basket_id_of(alice), START)
    added = await shop.add(alice, book)
    cleared = await shop.run(b.ClearBasket(customer_id=alice))
    again = await shop.run(b.ClearBasket(customer_id=alice))

    assert cleared.position > added.position and again.position == cleared.position
    assert [e.event_type for e in await shop.events_of(alice)] == ["BasketItemAdded", "BasketCleared"]


# ---- projection and queries


async def test_a_basket_never_used_reads_as_empty(shop: Shop) -> None:
    alice = customer()
    await shop.project()
    found = await shop.queries.basket_of(alice)
    assert (found.id, found.lines, found.total_price, found.version) == (
        basket_id_of(alice),
        (),
        Decimal("0.00"),
        0,
    )


async def test_the_read_model_prices_lines_and_totals_and_announces_each_change(shop: Shop) -> None:
    alice = customer()
    dune, kindred = await shop.book("12.50"), await shop.book("20.00", sale="15.00")
    await shop.add(alice, kindred, 1)
    first = await shop.project()
    await shop.add(alice, dune, 2)
    await shop.add(alice, kindred, 2)
    later = await shop.project()

    found = await shop.queries.basket_of(alice)
    assert [(line.book_id, line.quantity, line.unit_price, line.line_total) for line in found.lines] == [
        (kindred, 3, Decimal("15.00"), Decimal("45.00")),
        (dune, 2, Decimal("12.50"), Decimal("25.00")),
    ]
    assert (found.total_price, found.version, found.lines[0].name) == (Decimal("70.00"), 3, "Kindred")
    assert basket_notices(first, alice) == [("CREATED", basket_id_of(alice))]
    assert basket_notices(later, alice) == [("UPDATED", basket_id_of(alice))] * 2


async def test_update_remove_and_clear_show_in_the_read_model(shop: Shop) -> None:
    alice, one, two = customer(), await shop.book("3.00"), await shop.book("4.00")
    await shop.add(alice, one, 1)
    await shop.add(alice, two, 1)
    await shop.run(b.UpdateBasketItem(customer_id=alice, book_id=one, quantity=10))
    await shop.project()
    assert (await shop.queries.basket_of(alice)).total_price == Decimal("34.00")

    await shop.run(b.RemoveBasketItem(customer_id=alice, book_id=one))
    await shop.project()
    assert [line.book_id for line in (await shop.queries.basket_of(alice)).lines] == [two]

    await shop.run(b.ClearBasket(customer_id=alice))
    await shop.project()
    cleared = await shop.queries.basket_of(alice)
    assert (cleared.lines, cleared.total_price, cleared.version) == ((), Decimal("0.00"), 5)


async def test_unit_prices_follow_catalog_price_changes_in_every_basket(shop: Shop) -> None:
    alice, bob, carol = customer(), customer(), customer()
    book, other = await shop.book("20.00"), await shop.book("5.00")
    await shop.add(alice, book, 2)
    await shop.add(bob, book, 1)
    await shop.add(carol, other, 1)
    await shop.project()
    before = await shop.queries.basket_of(alice)

    await shop.run(c.UpdateBook(book_id=book, price_sale=Decimal("12.00")), ADMIN)
    notices = await shop.project()

    assert [(line.unit_price, line.line_total) for line in (await shop.queries.basket_of(alice)).lines] == [
        (Decimal("12.00"), Decimal("24.00"))
    ]
    assert (await shop.queries.basket_of(bob)).total_price == Decimal("12.00")
    assert basket_notices(notices, alice) == [("UPDATED", basket_id_of(alice))]
    assert basket_notices(notices, bob) == [("UPDATED", basket_id_of(bob))]
    assert basket_notices(notices, carol) == []
    # The basket itself did not change: its version and time stay.
    after = await shop.queries.basket_of(alice)
    assert (after.version, after.updated_at) == (before.version, before.updated_at)


async def test_a_catalog_change_that_keeps_the_price_announces_nothing(shop: Shop) -> None:
    alice, book = customer(), await shop.book("20.00")
    await shop.add(alice, book)
    await shop.project()
    await shop.run(c.UpdateBook(book_id=book, status="OUT_OF_STOCK"), ADMIN)
    assert basket_notices(await shop.project(), alice) == []


async def test_a_deleted_book_stays_listed_but_leaves_the_total(shop: Shop) -> None:
    alice, kept, gone = customer(), await shop.book("7.00"), await shop.book("9.00")
    await shop.add(alice, kept)
    await shop.add(alice, gone, 2)
    await shop.project()
    await shop.run(c.DeleteBook(book_id=gone), ADMIN)
    notices = await shop.project()

    found = await shop.queries.basket_of(alice)
    assert [(line.book_id, line.available, line.line_total) for line in found.lines] == [
        (kept, True, Decimal("7.00")),
        (gone, False, Decimal("18.00")),
    ]
    assert found.total_price == Decimal("7.00")
    assert basket_notices(notices, alice) == [("UPDATED", basket_id_of(alice))]


async def test_reapplying_events_changes_and_announces_nothing(shop: Shop) -> None:
    alice, book = customer(), await shop.book("8.00")
    start = await shop.store.head()
    await shop.add(alice, book, 2)
    await shop.run(c.UpdateBook(book_id=book, price=Decimal("6.00")), ADMIN)
    await shop.run(b.ClearBasket(customer_id=alice))
    await shop.add(alice, book, 1)
    await shop.project()
    before = await shop.queries.basket_of(alice)

    events = await shop.store.read_all(start)
    async with shop.pool.acquire() as conn, conn.transaction():
        again = await shop.projection.apply(conn, events)

    assert again == []
    assert await shop.queries.basket_of(alice) == before


async def test_a_checkout_applied_before_an_earlier_addition_still_shows_that_line(shop: Shop) -> None:
    # Positions follow transactions: a checkout sent inside the saga's longer transaction can sort
    # before a line the customer added (and committed) just before it.
    alice, ordered, later = customer(), await shop.book(), await shop.book()
    basket = basket_id_of(alice)
    await shop.add(alice, ordered, 2)
    await shop.project()
    await shop.add(alice, later, 1)
    out = BasketCheckedOut(
        basket_id=basket,
        customer_id=alice,
        order_id=new_id(),
        lines=(CheckedOutLine(book_id=ordered, quantity=2),),
        left=(CheckedOutLine(book_id=later, quantity=1),),
    )
    async with shop.pool.acquire() as conn, conn.transaction():
        meta = Metadata(actor="test", correlation_id=new_id())
        await shop.store.append(
            conn, stream_id=basket, stream_type="Basket", expected_version=2, events=[out], metadata=meta
        )
    # The basket's own events after the projected first one: reading the whole log from its head instead
    # would depend on what other sessions' open transactions hide from commit order at that moment.
    events = (await shop.store.read_stream(basket))[1:]
    async with shop.pool.acquire() as conn, conn.transaction():
        await shop.projection.apply(conn, events[::-1])

    lines = (await shop.queries.basket_of(alice)).lines
    assert [(line.book_id, line.quantity) for line in lines] == [(later, 1)]


async def test_each_customer_reads_only_their_own_basket(shop: Shop) -> None:
    alice, bob, book = customer(), customer(), await shop.book()
    await shop.add(alice, book, 4)
    await shop.project()
    assert [line.quantity for line in (await shop.queries.basket_of(alice)).lines] == [4]
    assert (await shop.queries.basket_of(bob)).lines == ()


async def test_a_rebuild_reproduces_every_basket(shop: Shop) -> None:
    alice, book = customer(), await shop.book("4.00")
    await shop.add(alice, book, 3)
    await shop.run(c.UpdateBook(book_id=book, price=Decimal("5.00")), ADMIN)
    await shop.project()
    before = await shop.queries.basket_of(alice)

    report = await rebuild(shop.pool, shop.store, BASKET.name)

    assert report.new_generation == report.old_generation + 1
    assert await shop.queries.basket_of(alice) == before
    assert before.total_price == Decimal("15.00")


async def test_a_rebuild_changes_a_wave_of_baskets_at_once_like_the_live_projection_one_by_one(
    shop: Shop,
) -> None:
    books, customers = [await shop.book() for _ in range(3)], [customer() for _ in range(6)]
    for i, who in enumerate(customers):
        for book in books:
            await shop.add(who, book, 2)
        await shop.run(b.UpdateBasketItem(customer_id=who, book_id=books[i % 3], quantity=5 + i))
        await shop.run(b.RemoveBasketItem(customer_id=who, book_id=books[(i + 1) % 3]))
    for who in customers[:2]:
        await shop.run(b.ClearBasket(customer_id=who))
        await shop.run(b.CheckoutBasket(customer_id=who, order_id=new_id()), ACTOR)  # fails: empty
    for who in customers[2:4]:
        await shop.run(b.CheckoutBasket(customer_id=who, order_id=new_id()), ACTOR)
    await shop.project()
    before = [await shop.queries.basket_of(who) for who in customers]
    assert [len(basket.lines) for basket in before] == [0, 0, 0, 0, 2, 2]

    await rebuild(shop.pool, shop.store, BASKET.name)  # each basket's n-th event in wave n, two or more

    assert [await shop.queries.basket_of(who) for who in customers] == before
    (check,) = await verify(shop.pool, shop.store, [BASKET.name])  # a replay one event at a time
    assert check.ok, check.differences


# ---- concurrent changes of one basket


async def concurrent_adds(bus: CommandBus, who: str, book: str, count: int) -> list[object]:
    adds = [b.AddBasketItem(customer_id=who, book_id=book, quantity=1) for _ in range(count)]
    return await asyncio.gather(*(bus.dispatch(a, actor="user:alice") for a in adds), return_exceptions=True)


async def test_concurrent_adds_retry_until_each_succeeds(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    answers = await concurrent_adds(shop.bus, alice, book, 30)
    assert all(isinstance(a, CommandResult) for a in answers), answers
    assert len(await shop.events_of(alice)) == 30


async def test_past_the_deadline_a_lost_race_is_a_conflict(shop: Shop) -> None:
    alice, book = customer(), await shop.book()
    impatient = CommandBus(shop.pool, shop.store, redecide_deadline=0.0)
    answers = await concurrent_adds(impatient, alice, book, 30)
    won = sum(isinstance(a, CommandResult) for a in answers)
    assert won + sum(isinstance(a, ConflictError) for a in answers) == 30, answers
    assert won < 30  # the pool runs ten at once: some lose, and nothing retries them
    assert len(await shop.events_of(alice)) == won


# ---- the checkout consumer


async def request_checkout(store: EventStore, pool: asyncpg.Pool, who: str, order_id: str) -> Position:
    """Append what the checkout saga appends to ask for a basket."""
    request = CheckoutRequested(
        checkout_id=checkout_id_of(order_id),
        order_id=order_id,
        basket_id=basket_id_of(who),
        customer_id=who,
        attempt=1,
    )
    async with pool.acquire() as conn, conn.transaction():
        return await store.append(
            conn,
            stream_id=checkout_id_of(order_id),
            stream_type="Checkout",
            expected_version=0,
            events=[request],
            metadata=Metadata(actor="system:checkout", correlation_id=order_id),
        )


async def test_checkout_requests_check_baskets_out_once_under_redelivery(
    make_settings: Callable[[], Settings],
) -> None:
    async with bus_env(make_settings()) as env:
        bus = CommandBus(env.pool, env.store)
        alice, bob, order, empty_order = customer(), customer(), new_id(), new_id()
        book = await new_book(bus)
        await bus.dispatch(b.AddBasketItem(customer_id=alice, book_id=book, quantity=2), actor="user:alice")
        await request_checkout(env.store, env.pool, alice, order)
        await request_checkout(env.store, env.pool, bob, empty_order)
        consumer = BasketCheckout(bus)
        env.start(Relay(env.settings, env.pool, env.redis, env.store).run())
        env.start(
            ConsumerRunner(env.settings, env.pool, env.redis, env.store, consumer, env, env.keeper).run()
        )

        async def answered() -> bool:
            return len(await env.store.read_stream(basket_id_of(bob))) == 1

        await wait_until(answered, what="both checkout requests to be answered")
        alice_events = await env.store.read_stream(basket_id_of(alice))
        assert [e.event_type for e in alice_events] == ["BasketItemAdded", "BasketCheckedOut"]
        checked_out = alice_events[-1]
        assert checked_out.data["order_id"] == order
        assert checked_out.metadata["actor"] == ACTOR
        assert checked_out.metadata["correlation_id"] == order
        requests = [
            e for e in await env.store.read_all(START, limit=10_000) if e.event_type == "CheckoutRequested"
        ]
        assert checked_out.metadata["causation_id"] == requests[0].event_id
        (failed,) = await env.store.read_stream(basket_id_of(bob))
        assert (failed.event_type, failed.data["reason"]) == ("BasketCheckoutFailed", "The basket is empty.")

        # Redelivery through Redis: the same entries again; the checkpoint skips them.
        entries: Any = await env.redis.xrange(env.settings.events_stream)
        for _, fields in entries:
            await env.redis.xadd(env.settings.events_stream, fields)
        await wait_until(lambda: _group_idle(env), what="the redelivered entries to be read and acknowledged")
        # Redelivery past the checkpoint (a dead letter retried): the aggregate answers each order once.
        await bus.dispatch(b.AddBasketItem(customer_id=alice, book_id=book, quantity=1), actor="user:alice")
        async with env.pool.acquire() as conn, conn.transaction():
            assert await consumer.apply(conn, requests) == []

        assert [e.event_type for e in await env.store.read_stream(basket_id_of(alice))] == [
            "BasketItemAdded",
            "BasketCheckedOut",
            "BasketItemAdded",
        ]
        assert len(await env.store.read_stream(basket_id_of(bob))) == 1
        assert await _checkpoint(env.pool) >= max(r.position for r in requests)


async def _group_idle(env: BusEnv) -> bool:
    info = await env.redis.xinfo_groups(env.settings.events_stream)
    return bool(info) and all(group["pending"] == 0 and group["lag"] == 0 for group in info)


async def _checkpoint(pool: asyncpg.Pool) -> Position:
    row = await pool.fetchrow(
        "SELECT transaction_id, global_position FROM bus.checkpoints WHERE name = 'basket-checkout'"
    )
    assert row is not None
    return Position(row[0], row[1])
