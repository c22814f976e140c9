"""The checkout saga against real PostgreSQL and Redis: happy path, compensation, timeouts, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from app.bus.scheduler import Scheduler
from app.bus.workers import Workers
from app.commands.bus import CommandBus
from app.domain.basket import commands as b
from app.domain.catalog import commands as c
from app.domain.finance.checkout import TIMED_OUT
from app.domain.ordering import commands as o
from app.events.base import Event, Metadata
from app.events.basket import BasketCheckedOut, BasketCheckoutFailed
from app.events.ordering import OrderCompleted, OrderLine, OrderPlaced
from app.eventstore import START, Position, RecordedEvent
from app.ids import basket_id_of, checkout_id_of, customer_id_of, new_id
from app.processes.basket_checkout import BasketCheckout
from app.processes.checkout_saga import ACTOR, NAME, TIMEOUT, CheckoutSaga, timeout_key
from app.settings import Settings
from tests.integration.bus_support import BusEnv, bus_env, wait_until
from tests.integration.draining import drain

ADMIN = "user:admin"
SLOW = 3600.0  # a timeout that never falls due during a test
QUICK = 0.2


@dataclass
class Flow:
    """One database with the saga wired to the real command bus (and so to the real order handlers)."""

    env: BusEnv
    bus: CommandBus
    saga: CheckoutSaga
    last: Position = START  # of the last event this test appended or caused

    async def run(self, command: Any, actor: str = ADMIN) -> None:
        """Dispatch `command` through the real bus."""
        done = await self.bus.dispatch(command, actor=actor)
        self.last = max(self.last, done.position)

    async def append(self, stream_id: str, stream_type: str, event: Event, correlation: str) -> RecordedEvent:
        """Append `event` as its own context would; return it as recorded."""
        version = len(await self.env.store.read_stream(stream_id))
        async with self.env.pool.acquire() as conn, conn.transaction():
            position = await self.env.store.append(
                conn,
                stream_id=stream_id,
                stream_type=stream_type,
                expected_version=version,
                events=[event],
                metadata=Metadata(actor="test", correlation_id=correlation),
            )
        self.last = max(self.last, position)
        return (await self.env.store.read_stream(stream_id))[-1]

    async def place(self) -> tuple[str, str, RecordedEvent]:
        """Append a new order's OrderPlaced; return (order id, buyer id, the recorded event)."""
        order, buyer = new_id(), customer_id_of(f"sub-{new_id()}")
        return order, buyer, await self.append(order, "Order", placed(order, buyer), correlation=order)

    async def answer(self, order: str, buyer: str, *, ok: bool) -> RecordedEvent:
        basket = basket_id_of(buyer)
        answer: Event = (
            BasketCheckedOut(basket_id=basket, customer_id=buyer, order_id=order)
            if ok
            else BasketCheckoutFailed(basket_id=basket, customer_id=buyer, order_id=order, reason="Empty.")
        )
        return await self.append(basket, "Basket", answer, correlation=order)

    async def run_saga(self) -> list[RecordedEvent]:
        """Run saga batches as the consumer runner does, until it passed every event, its own included."""
        return (await drain(self.env.pool, self.env.store, self.saga, self.caught_up_to)).events

    async def caught_up_to(self) -> Position:
        """Move `last` to the newest committed event, the saga's own included, and return it."""
        self.last = max(self.last, await self.newest())
        return self.last

    async def newest(self) -> Position:
        """The position of the newest committed event, visible to commit-order readers or not yet."""
        row = await self.env.pool.fetchrow(
            "SELECT transaction_id::text::bigint, global_position FROM eventstore.events "
            "ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
        )
        return START if row is None else Position(row[0], row[1])

    async def state(self, order: str) -> tuple[str, int] | None:
        row = await self.env.pool.fetchrow(
            "SELECT stage, attempts FROM finance.checkouts WHERE order_id = $1::uuid", order
        )
        return None if row is None else (row[0], row[1])

    async def requests(self, order: str) -> list[RecordedEvent]:
        return await self.env.store.read_stream(checkout_id_of(order))

    async def order_events(self, order: str) -> list[str]:
        return [e.event_type for e in await self.env.store.read_stream(order)]

    async def timeouts(self, order: str) -> list[str]:
        rows = await self.env.pool.fetch(
            "SELECT key FROM bus.scheduled WHERE kind = $1 AND key LIKE $2 ORDER BY key",
            TIMEOUT,
            f"{order}:%",
        )
        return [r[0] for r in rows]

    def workers(self, *, basket: bool) -> Workers:
        """The real workers: relay, the saga (and the basket's checkout consumer), the scheduler."""
        consumers: list[Any] = [self.saga] + ([BasketCheckout(self.bus)] if basket else [])
        env = self.env
        return Workers(
            env.settings,
            env.pool,
            env.redis,
            env.store,
            consumers,
            env,
            scheduled={TIMEOUT: self.saga.on_timeout},
        )


def placed(order: str, buyer: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=order,
        buyer_id=buyer,
        buyer_name="Alice",
        buyer_email="alice@example.com",
        basket_id=basket_id_of(buyer),
        street="1 Main St",
        city="Springfield",
        province="Ontario",
        note=None,
        lines=(OrderLine(book_id=new_id(), name="Dune", quantity=1, unit_price=Decimal("9.99")),),
        total=Decimal("9.99"),
    )


@pytest.fixture
async def make_flow(make_settings: Callable[[], Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Return an async context factory of flows on a new database, with the given checkout timeout."""

    @contextlib.asynccontextmanager
    async def make(checkout_timeout: float = SLOW) -> AsyncIterator[Flow]:
        settings = dataclasses.replace(
            make_settings(), checkout_timeout=checkout_timeout, checkout_attempts=3
        )
        async with bus_env(settings) as env:
            bus = CommandBus(env.pool, env.store)
            yield Flow(env, bus, CheckoutSaga(settings, env.pool, env.store, bus, Scheduler(env.pool)))

    yield make


# ---- happy path


async def test_order_placed_requests_the_checkout_and_starts_its_timeout(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, event = await flow.place()
        before = dt.datetime.now(dt.UTC)
        await flow.run_saga()

        assert await flow.state(order) == ("CHECKING_OUT", 1)
        (request,) = await flow.requests(order)
        assert (request.stream_type, request.event_type) == ("Checkout", "CheckoutRequested")
        assert request.data == {
            "checkout_id": checkout_id_of(order),
            "order_id": order,
            "basket_id": basket_id_of(buyer),
            "customer_id": buyer,
            "attempt": 1,
        }
        assert request.metadata["actor"] == ACTOR
        assert request.metadata["correlation_id"] == order
        assert request.metadata["causation_id"] == event.event_id
        due = await flow.env.pool.fetchval(
            "SELECT due_at FROM bus.scheduled WHERE kind = $1 AND key = $2", TIMEOUT, timeout_key(order, 1)
        )
        assert due > before + dt.timedelta(seconds=SLOW - 60)


async def test_checked_out_then_completed_ends_the_saga(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.run_saga()
        await flow.answer(order, buyer, ok=True)
        await flow.run_saga()
        assert await flow.state(order) == ("AWAITING_COMPLETION", 1)
        assert await flow.timeouts(order) == []

        await flow.run(o.CompleteOrder(order_id=order))
        await flow.run_saga()
        assert await flow.state(order) == ("COMPLETED", 1)
        assert await flow.order_events(order) == ["OrderPlaced", "OrderCompleted"]
        assert len(await flow.requests(order)) == 1


async def test_the_whole_flow_with_the_real_basket_and_order(make_flow: Any) -> None:
    async with make_flow() as flow:
        bus, alice = flow.bus, customer_id_of("alice")
        book = await new_book(bus)
        await bus.dispatch(b.AddBasketItem(customer_id=alice, book_id=book, quantity=2), actor="user:alice")
        await bus.dispatch(
            o.UpdateBuyerAddress(
                buyer_id=alice, name="Alice", email=None, street="1 Main St", city="Town", province="Ontario"
            ),
            actor="user:alice",
        )
        order = new_id()
        place = o.PlaceOrder(order_id=order, buyer_id=alice, buyer_name="Alice", buyer_email=None, note=None)
        await bus.dispatch(place, actor="user:alice")
        workers = flow.workers(basket=True)
        await workers.start()
        try:

            async def awaiting() -> bool:
                return await flow.state(order) == ("AWAITING_COMPLETION", 1)

            await wait_until(awaiting, what="the basket to be checked out for the order")
            basket = [e.event_type for e in await flow.env.store.read_stream(basket_id_of(alice))]
            assert basket == ["BasketItemAdded", "BasketCheckedOut"]

            await bus.dispatch(o.CompleteOrder(order_id=order), actor=ADMIN)

            async def completed() -> bool:
                return await flow.state(order) == ("COMPLETED", 1)

            await wait_until(completed, what="the saga to see the order completed")
        finally:
            await workers.stop()
        assert await flow.timeouts(order) == []


# ---- compensation


async def test_a_failed_checkout_cancels_the_order(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.run_saga()
        failure = await flow.answer(order, buyer, ok=False)
        await flow.run_saga()

        assert await flow.state(order) == ("CANCELLED", 1)
        assert await flow.timeouts(order) == []
        cancelled = (await flow.env.store.read_stream(order))[-1]
        assert cancelled.event_type == "OrderCancelled"
        assert cancelled.data["reason"] == "The basket could not be checked out: Empty."
        assert cancelled.metadata["actor"] == ACTOR
        assert cancelled.metadata["causation_id"] == failure.event_id
        assert cancelled.metadata["correlation_id"] == order

        await flow.run_saga()  # the saga now reads its own OrderCancelled: nothing more happens
        assert await flow.order_events(order) == ["OrderPlaced", "OrderCancelled"]
        assert await flow.state(order) == ("CANCELLED", 1)


async def test_compensating_an_order_cancelled_meanwhile_is_not_an_error(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.run_saga()
        await flow.answer(order, buyer, ok=False)
        # The buyer cancels before the saga reads the failure: its CancelOrder meets a Conflict.
        await flow.run(o.CancelOrder(order_id=order, requested_by=buyer), actor="user:alice")
        await flow.run_saga()

        assert await flow.order_events(order) == ["OrderPlaced", "OrderCancelled"]
        assert (await flow.env.store.read_stream(order))[-1].metadata["actor"] == "user:alice"
        assert await flow.state(order) == ("CANCELLED", 1)


async def test_a_basket_checked_out_after_the_cancellation_is_reported(
    make_flow: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.run_saga()
        await flow.run(o.CancelOrder(order_id=order, requested_by=buyer), actor="user:alice")
        await flow.answer(order, buyer, ok=True)  # the request was already on its way
        with caplog.at_level(logging.WARNING, logger="app.processes.checkout_saga"):
            await flow.run_saga()
        assert await flow.state(order) == ("CANCELLED", 1)
        assert f"basket checked out for order {order}, already cancelled" in caplog.text


# ---- timeouts


async def test_unanswered_requests_are_resent_then_the_order_is_cancelled(make_flow: Any) -> None:
    async with make_flow(QUICK) as flow:
        order, _, _ = await flow.place()
        workers = flow.workers(basket=False)  # nobody answers the requests
        await workers.start()
        try:

            async def cancelled() -> bool:
                return "OrderCancelled" in await flow.order_events(order)

            await wait_until(cancelled, what="three timeouts and the cancellation", within=30.0)
        finally:
            await workers.stop()

        requests = await flow.requests(order)
        assert [r.data["attempt"] for r in requests] == [1, 2, 3]
        assert [r.stream_version for r in requests] == [1, 2, 3]
        assert all(r.metadata["correlation_id"] == order for r in requests)
        assert [r.metadata["causation_id"] is None for r in requests] == [False, True, True]
        cancelled = (await flow.env.store.read_stream(order))[-1]
        assert (cancelled.data["reason"], cancelled.metadata["actor"]) == (TIMED_OUT, ACTOR)
        assert await flow.state(order) == ("CANCELLED", 3)
        assert await flow.timeouts(order) == []
        assert await flow.order_events(order) == ["OrderPlaced", "OrderCancelled"]


async def test_a_redelivered_or_stale_timeout_does_nothing(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, _, _ = await flow.place()
        await flow.run_saga()
        timeout = {"order_id": order, "attempt": 1}
        await flow.saga.on_timeout(timeout)
        await flow.saga.on_timeout(timeout)  # the same timeout again: request 1 is no longer the latest
        assert await flow.state(order) == ("CHECKING_OUT", 2)
        assert [r.data["attempt"] for r in await flow.requests(order)] == [1, 2]
        assert await flow.timeouts(order) == [timeout_key(order, 1), timeout_key(order, 2)]

        await flow.saga.on_timeout({"order_id": new_id(), "attempt": 1})  # an order the saga never saw
        assert await flow.env.pool.fetchval("SELECT count(*) FROM finance.checkouts") == 1


async def test_a_timeout_after_the_answer_does_nothing(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.run_saga()
        await flow.answer(order, buyer, ok=True)
        await flow.run_saga()
        await flow.saga.on_timeout({"order_id": order, "attempt": 1})
        assert await flow.state(order) == ("AWAITING_COMPLETION", 1)
        assert len(await flow.requests(order)) == 1


async def test_a_timeout_waits_for_the_consumer_holding_the_checkout_then_acts_once(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, _, _ = await flow.place()
        await flow.run_saga()
        async with flow.env.pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("SELECT 1 FROM finance.checkouts WHERE order_id = $1::uuid FOR UPDATE", order)
            timeout = asyncio.create_task(flow.saga.on_timeout({"order_id": order, "attempt": 1}))
            await asyncio.sleep(0.2)
            assert not timeout.done()  # serialised behind the row lock, not failing or skipping
            await transaction.commit()
        await asyncio.wait_for(timeout, 10)
        assert await flow.state(order) == ("CHECKING_OUT", 2)
        await flow.saga.on_timeout({"order_id": order, "attempt": 1})  # the same timeout again: stale
        assert await flow.state(order) == ("CHECKING_OUT", 2)


# ---- redelivery


async def test_applying_the_same_events_twice_requests_and_cancels_once(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.answer(order, buyer, ok=False)
        events = await flow.run_saga()
        # The same batch again, past the checkpoint (as a retried dead letter would be applied).
        async with flow.env.pool.acquire() as conn, conn.transaction():
            assert await flow.saga.apply(conn, events) == []

        assert len(await flow.requests(order)) == 1
        assert await flow.order_events(order) == ["OrderPlaced", "OrderCancelled"]
        assert await flow.state(order) == ("CANCELLED", 1)
        assert await flow.timeouts(order) == []


async def test_a_reset_checkpoint_replays_everything_without_a_second_effect(make_flow: Any) -> None:
    async with make_flow() as flow:
        first, buyer, _ = await flow.place()
        await flow.answer(first, buyer, ok=True)
        second, other, _ = await flow.place()
        await flow.answer(second, other, ok=False)
        await flow.run_saga()
        await flow.run_saga()  # also reads the OrderCancelled it caused
        await flow.env.pool.execute(
            "UPDATE bus.checkpoints SET transaction_id = 0, global_position = 0 WHERE name = $1", NAME
        )
        replayed = await flow.run_saga()

        assert {e.event_type for e in replayed} >= {"OrderPlaced", "BasketCheckedOut", "OrderCancelled"}
        assert [len(await flow.requests(o)) for o in (first, second)] == [1, 1]
        assert await flow.order_events(second) == ["OrderPlaced", "OrderCancelled"]
        assert await flow.state(first) == ("AWAITING_COMPLETION", 1)
        assert await flow.state(second) == ("CANCELLED", 1)


async def test_redelivery_through_redis_is_skipped_by_the_checkpoint(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer, _ = await flow.place()
        await flow.answer(order, buyer, ok=False)
        workers = flow.workers(basket=False)
        await workers.start()
        try:

            async def cancelled() -> bool:
                return await flow.state(order) == ("CANCELLED", 1)

            await wait_until(cancelled, what="the compensation")
            entries: Any = await flow.env.redis.xrange(flow.env.settings.events_stream)
            for _, fields in entries:
                await flow.env.redis.xadd(flow.env.settings.events_stream, fields)

            async def idle() -> bool:
                info = await flow.env.redis.xinfo_groups(flow.env.settings.events_stream)
                return bool(info) and all(g["pending"] == 0 and g["lag"] == 0 for g in info)

            await wait_until(idle, what="the redelivered entries to be read and acknowledged")
        finally:
            await workers.stop()
        assert len(await flow.requests(order)) == 1
        assert await flow.order_events(order) == ["OrderPlaced", "OrderCancelled"]


async def test_events_of_orders_the_saga_never_saw_are_ignored(make_flow: Any) -> None:
    async with make_flow() as flow:
        order, buyer = new_id(), new_id()
        await flow.append(order, "Order", OrderCompleted(order_id=order, buyer_id=buyer), correlation=order)
        await flow.answer(order, buyer, ok=False)
        await flow.run_saga()
        assert await flow.state(order) is None
        assert await flow.order_events(order) == ["OrderCompleted"]


async def new_book(bus: CommandBus) -> str:
    """Create a book (with its category, publisher and author) as an admin; return its id."""

    async def run(command: Any) -> str:
        return (await bus.dispatch(command, actor=ADMIN)).entity_id

    return await run(
        c.CreateBook(
            book_id=new_id(),
            name="Kindred",
            price=Decimal("10.00"),
            price_sale=None,
            category_id=await run(c.CreateCategory(category_id=new_id(), name=f"C {new_id()}")),
            publisher_id=await run(c.CreatePublisher(publisher_id=new_id(), name=f"P {new_id()}")),
            author_ids=(await run(c.CreateAuthor(author_id=new_id(), name="Octavia E. Butler")),),
        )
    )
