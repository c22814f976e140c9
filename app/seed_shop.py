"""Demo shoppers: customers with addresses, baskets, orders and reviews, loaded through the command side.

Every command carries a stable idempotency key, so seeding twice changes nothing. Orders are placed
from the customer's basket; the checkout saga empties the basket once a worker runs.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from app.domain.basket.commands import AddBasketItem
from app.domain.commands import Command
from app.domain.ordering.commands import CompleteOrder, PlaceOrder, UpdateBuyerAddress
from app.domain.rating.commands import CreateFeedback
from app.ids import customer_id_of

_RANDOM_SEED = 20261128
REVIEWED_BOOKS = 60


@dataclass(frozen=True)
class Customer:
    """A demo customer; `bookworm token --sub <subject>` signs in as them."""

    subject: str
    name: str
    email: str
    street: str
    city: str
    province: str

    @property
    def customer_id(self) -> str:
        return customer_id_of(self.subject)


CUSTOMERS: tuple[Customer, ...] = (
    Customer("demo-alice", "Alice Moreau", "alice@example.com", "12 Rue des Lilas", "Lyon", "Rhône"),
    Customer("demo-bob", "Bob Lindgren", "bob@example.com", "4 Harbour Lane", "Bergen", "Vestland"),
    Customer("demo-chen", "Chen Wei", "chen@example.com", "88 Nanjing Road", "Shanghai", "Shanghai"),
    Customer("demo-dana", "Dana Okafor", "dana@example.com", "7 Marina Street", "Lagos", "Lagos"),
    Customer("demo-emil", "Emil Novak", "emil@example.com", "23 Vinohradská", "Prague", "Prague"),
    Customer("demo-farah", "Farah Haddad", "farah@example.com", "5 Cedar Avenue", "Beirut", "Beirut"),
    Customer("demo-gus", "Gus Ferreira", "gus@example.com", "310 Rua Augusta", "São Paulo", "SP"),
    Customer("demo-hana", "Hana Sato", "hana@example.com", "2-1 Jingumae", "Tokyo", "Tokyo"),
)
ORDERING = CUSTOMERS[:5]  # each places one order, the first one's completed; the rest keep an open basket

_FIRST = ("Anna", "Ben", "Carla", "David", "Elif", "Frank", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luis")
_LAST = ("Adler", "Brandt", "Costa", "Duval", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova", "Jansen")
_COMMENTS = (
    "Could not put it down.",
    "A slow start, but the last third is superb.",
    "Solid, if a little long.",
    "Not for me; the characters never came alive.",
    "I have already bought a second copy for a friend.",
    None,
)


@dataclass(frozen=True)
class Item:
    key: str
    command: Command


StableId = Callable[[str, int], str]


def shopper_items(book_ids: Sequence[str], stable_id: StableId) -> Iterator[Item]:
    """Yield the commands that create the demo customers' addresses, baskets, orders and reviews."""
    rng = random.Random(_RANDOM_SEED)
    for c in CUSTOMERS:
        yield Item(f"seed:address:{c.subject}", _address(c))
        for n, book_id in enumerate(rng.sample(list(book_ids), k=min(3, len(book_ids)))):
            add = AddBasketItem(customer_id=c.customer_id, book_id=book_id, quantity=rng.randint(1, 3))
            yield Item(f"seed:basket:{c.subject}:{n}", add)
    for number, c in enumerate(ORDERING):
        yield Item(f"seed:order:{c.subject}", _place(c, stable_id("order", number)))
    yield Item("seed:complete:0", CompleteOrder(order_id=stable_id("order", 0)))
    yield from _reviews(rng, book_ids[:REVIEWED_BOOKS], stable_id)


def _address(c: Customer) -> UpdateBuyerAddress:
    return UpdateBuyerAddress(
        buyer_id=c.customer_id, name=c.name, email=c.email, street=c.street, city=c.city, province=c.province
    )


def _place(c: Customer, order_id: str) -> PlaceOrder:
    note = "Gift wrap, please." if c is ORDERING[1] else None
    return PlaceOrder(
        order_id=order_id, buyer_id=c.customer_id, buyer_name=c.name, buyer_email=c.email, note=note
    )


def _reviews(rng: random.Random, book_ids: Sequence[str], stable_id: StableId) -> Iterator[Item]:
    reviewers = [(i, first, last) for i, (first, last) in enumerate(itertools.product(_FIRST, _LAST))]
    n = 0
    for book_id in book_ids:
        for i, first, last in rng.sample(reviewers, k=rng.randint(0, 4)):
            command = CreateFeedback(
                feedback_id=stable_id("feedback", n),
                book_id=book_id,
                customer_id=customer_id_of(f"seed-reviewer-{i}"),
                first_name=first,
                last_name=last,
                comment=rng.choice(_COMMENTS),
                rating=rng.choice((2, 3, 4, 4, 5, 5)),
            )
            yield Item(f"seed:feedback:{n}", command)
            n += 1
