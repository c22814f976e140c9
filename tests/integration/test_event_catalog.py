"""The event catalog's declarations against a shop's life run through the real bus, processes and projections.

The command bus refuses an event its command does not declare, and a projection's notices on an
undeclared topic fail `drain`: nothing undeclared can happen. This test runs every command, process
manager and projection once and requires every declared command, sender, event and topic to happen,
so docs/events.md lists nothing that cannot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import pytest

from app.bootstrap import build_processes
from app.bus.protocol import Consumer
from app.commands.bus import HANDLERS, CommandBus
from app.commands.streams import Context, Handler, load, save
from app.domain.basket import commands as b
from app.domain.catalog import author, named
from app.domain.catalog import commands as c
from app.domain.commands import Command
from app.domain.ordering import commands as o
from app.domain.rating import commands as r
from app.events.base import Event
from app.events.catalog import AuthorRenamed
from app.eventstore import EventStore
from app.ids import customer_id_of, new_id
from app.processes import PROCESS_MANAGERS
from app.projections import PROJECTIONS, ProjectionConsumer
from app.settings import Settings
from tests.integration.bus_support import BusEnv, bus_env
from tests.integration.draining import announced, declared, drain

ADMIN = "user:admin"


@dataclass
class Recorder:
    """Wraps the bus's handlers to record what each command decided, and who sent it."""

    decided: set[tuple[type[Command], type[Event]]] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    senders: set[tuple[str, type[Command]]] = field(default_factory=set)

    def wrap(self, handler: Handler) -> Handler:
        async def recorded(ctx: Context, command: Command) -> str:
            entity_id = await handler(ctx, command)
            self.events += ctx.writes.events()
            self.decided |= {(type(command), type(event)) for event in ctx.writes.events()}
            self.senders.add((ctx.metadata.actor, type(command)))
            return entity_id

        return recorded


@dataclass(frozen=True)
class Parts:
    settings: Settings
    pool: asyncpg.Pool
    event_store: EventStore
    commands: CommandBus


@dataclass
class Shop:
    env: BusEnv
    bus: CommandBus
    recorder: Recorder
    processes: list[Consumer]

    async def run(self, command: Command, actor: str = ADMIN) -> None:
        await self.bus.dispatch(command, actor=actor)

    async def settle(self) -> None:
        """Run the process managers until none has anything left: each reacts to the others' events."""
        while True:
            env = self.env
            applied = [(await drain(env.pool, env.store, p, env.store.newest)).events for p in self.processes]
            if not any(applied):
                return


@pytest.fixture
async def shop(make_settings: Callable[[], Settings]) -> AsyncIterator[Shop]:
    settings = make_settings()
    async with bus_env(settings) as env:
        recorder = Recorder()
        handlers = {command: recorder.wrap(handler) for command, handler in HANDLERS.items()}
        bus = CommandBus(env.pool, env.store, handlers=handlers)
        processes = build_processes(Parts(settings, env.pool, env.store, bus))
        yield Shop(env, bus, recorder, processes)


async def live_a_shop_s_life(shop: Shop) -> None:
    """Run every command and every path of the process managers at least once."""
    run = shop.run
    alice = customer_id_of(f"sub-{new_id()}")
    writer, category, publisher, book, other = (new_id() for _ in range(5))
    await run(c.CreateAuthor(author_id=writer, name="Ursula K. Le Guin"))
    await run(c.CreateCategory(category_id=category, name="Fiction"))
    await run(c.CreatePublisher(publisher_id=publisher, name="Ace"))
    for book_id, name in ((book, "The Dispossessed"), (other, "The Lathe of Heaven")):
        refs = {"category_id": category, "publisher_id": publisher, "author_ids": (writer,)}
        await run(c.CreateBook(book_id=book_id, name=name, price=Decimal("10.00"), **refs))
    # Renames reach the books that show the name.
    await run(c.RenameAuthor(author_id=writer, name="U. K. Le Guin"))
    await run(c.RenameCategory(category_id=category, name="Novels"))
    await run(c.RenamePublisher(publisher_id=publisher, name="Ace Books"))

    address = {"street": "1 Main St", "city": "Springfield", "province": "Ontario"}
    await run(o.UpdateBuyerAddress(buyer_id=alice, name="Alice", email="alice@example.com", **address))
    await run(b.AddBasketItem(customer_id=alice, book_id=book, quantity=1))
    await run(b.UpdateBasketItem(customer_id=alice, book_id=book, quantity=2))
    await run(b.AddBasketItem(customer_id=alice, book_id=other, quantity=1))
    await run(b.RemoveBasketItem(customer_id=alice, book_id=other))
    buyer = {"buyer_id": alice, "buyer_name": "Alice", "buyer_email": "alice@example.com", "note": None}
    first, second = new_id(), new_id()
    await run(o.PlaceOrder(order_id=first, buyer_email_verified=True, **buyer))
    await shop.settle()  # the saga asks for the basket, which is checked out
    await run(o.CompleteOrder(order_id=first))
    await run(b.AddBasketItem(customer_id=alice, book_id=book, quantity=1))
    await run(o.PlaceOrder(order_id=second, buyer_email_verified=True, **buyer))
    await run(b.ClearBasket(customer_id=alice))
    await shop.settle()  # the checkout of an emptied basket fails; the saga cancels the order

    # A basket holding a book hears of its new price, and of its deletion below.
    await run(b.AddBasketItem(customer_id=alice, book_id=book, quantity=1))
    await run(c.UpdateBook(book_id=book, price=Decimal("12.00")))
    reviewer = {"customer_id": alice, "first_name": "Alice", "last_name": "Liddell", "comment": None}
    kept, gone = new_id(), new_id()
    await run(r.CreateFeedback(feedback_id=kept, book_id=book, rating=5, **reviewer))
    await run(r.DeleteFeedback(feedback_id=kept))
    await run(r.CreateFeedback(feedback_id=gone, book_id=new_id(), rating=1, **reviewer))
    await shop.settle()  # the feedback check removes feedback on a book that does not exist

    await run(c.DeleteBook(book_id=book))
    await run(c.DeleteBook(book_id=other))
    await run(c.DeleteAuthor(author_id=writer))
    await run(c.DeleteCategory(category_id=category))
    await run(c.DeletePublisher(publisher_id=publisher))
    await shop.settle()


async def test_every_declared_producer_sender_and_topic_happens(shop: Shop) -> None:
    await live_a_shop_s_life(shop)

    assert {type(p) for p in shop.processes} == set(PROCESS_MANAGERS)
    emits = {(command.__name__, event.__name__) for command in HANDLERS for event in command.emits}
    decided = {(command.__name__, event.__name__) for command, event in shop.recorder.decided}
    assert decided == emits, f"declared, never decided: {emits - decided}; undeclared: {decided - emits}"

    sends = {(f"system:{p.name}", command.__name__) for p in PROCESS_MANAGERS for command in p.sends}
    sent = {(actor, command.__name__) for actor, command in shop.recorder.senders if actor != ADMIN}
    assert sent == sends, f"declared, never sent: {sends - sent}; undeclared: {sent - sends}"

    appends = {(f"system:{p.name}", event.__name__) for p in PROCESS_MANAGERS for event in p.emits}
    everything = await shop.env.store.read_all(limit=10_000)
    direct = [e for e in everything if e.event not in shop.recorder.events]  # appended by no command
    appended = {(e.metadata["actor"], type(e.event).__name__) for e in direct}
    assert appended == appends, (
        f"declared, never appended: {appends - appended}; undeclared: {appended - appends}"
    )

    for projection in PROJECTIONS.values():
        consumer = ProjectionConsumer(projection)
        drained = await drain(shop.env.pool, shop.env.store, consumer, shop.env.store.newest)
        never = declared(projection) - announced(drained.events, drained.notices)
        assert never == set(), f"{projection.name} declares, never announced: (event, topic) {never}"


async def test_the_bus_refuses_an_event_its_command_does_not_declare(shop: Shop) -> None:
    async def renaming(ctx: Context, command: c.CreateAuthor) -> str:
        loaded = await load(ctx, command.author_id, author.evolve, named.State())
        save(ctx, command.author_id, "Author", loaded, [AuthorRenamed(author_id=command.author_id, name="X")])
        return command.author_id

    bus = CommandBus(shop.env.pool, shop.env.store, handlers={c.CreateAuthor: renaming})
    with pytest.raises(TypeError, match="CreateAuthor decided AuthorRenamed"):
        await bus.dispatch(c.CreateAuthor(author_id=new_id(), name="X"), actor=ADMIN)
    assert await shop.env.store.read_all() == []
