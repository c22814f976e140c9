"""Demo data: a deterministic, idempotent catalog loaded through the command side."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from app import seed_data as words
from app.commands.bus import CommandBus
from app.domain.catalog.commands import CreateAuthor, CreateBook, CreateCategory, CreatePublisher
from app.eventstore import Position
from app.seed_shop import Item, shopper_items

if TYPE_CHECKING:
    from app.bootstrap import Container

ACTOR = "system:seed"
# Fixed seeds: the same catalog, ids and idempotency keys on every machine and every run.
_RANDOM_SEED = 20261127
_ID_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: the UUIDv7 time of the demo ids
_ID_OFFSETS = {
    "author": 0,
    "category": 1_000,
    "publisher": 2_000,
    "book": 10_000,
    "order": 500_000,
    "feedback": 600_000,
}


@dataclass(frozen=True, kw_only=True)
class SeedSummary:
    counts: dict[str, int]  # commands sent, by what they create: books, orders, reviews, ...
    created: int | None  # commands that wrote new events; None when it cannot be told

    def __str__(self) -> str:
        listed = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        if self.created is None:
            return f"Seeded {listed}."
        total = sum(self.counts.values())
        return f"Seeded {listed}: {self.created} new, {total - self.created} already there."


def stable_id(kind: str, number: int) -> str:
    """Return the demo entity's UUIDv7: a fixed time per entity and hash bits, the same on every run."""
    millis = _ID_EPOCH_MS + _ID_OFFSETS[kind] + number
    rand = int.from_bytes(hashlib.sha256(f"bookworm-seed:{kind}:{number}".encode()).digest()[:10], "big")
    rand_a = rand >> 68 & 0x0FFF
    rand_b = rand & ((1 << 62) - 1)
    value = millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def _catalog_items() -> Iterator[Item]:
    for i, name in enumerate(words.AUTHORS):
        yield Item(f"seed:author:{i}", CreateAuthor(author_id=stable_id("author", i), name=name))
    for i, name in enumerate(words.CATEGORIES):
        yield Item(f"seed:category:{i}", CreateCategory(category_id=stable_id("category", i), name=name))
    for i, name in enumerate(words.PUBLISHERS):
        yield Item(f"seed:publisher:{i}", CreatePublisher(publisher_id=stable_id("publisher", i), name=name))


def _authors_by_category() -> dict[int, list[int]]:
    """Give each author one home category and a third of them a second: books draw from these."""
    homes: dict[int, list[int]] = {c: [] for c in range(len(words.CATEGORIES))}
    for a in range(len(words.AUTHORS)):
        homes[a % len(words.CATEGORIES)].append(a)
        if a % 3 == 0:
            homes[(a * 7 + 5) % len(words.CATEGORIES)].append(a)
    return homes


def _title(rng: random.Random, category: str) -> str:
    pattern = rng.choice(words.TITLE_PATTERNS[category])
    idea, idea2 = rng.sample(words.IDEAS, 2)
    return pattern.format(
        adj=rng.choice(words.ADJECTIVES),
        noun=rng.choice(words.NOUNS),
        place=rng.choice(words.PLACES),
        subject=rng.choice(words.SUBJECTS),
        science=rng.choice(words.SCIENCE_TOPICS),
        idea=idea,
        idea2=idea2,
        person=rng.choice(words.PEOPLE),
        animal=rng.choice(words.ANIMALS),
        cuisine=rng.choice(words.CUISINES),
        ingredient=rng.choice(words.INGREDIENTS),
        region=rng.choice(words.REGIONS),
    )


def _description(rng: random.Random, category: str, title: str) -> str:
    opening = rng.choice(words.OPENINGS[category])
    middle = rng.choice(words.MIDDLES)
    closing = rng.choice(words.CLOSINGS)
    return f"{opening}: {title} {middle}. {closing}".strip()


def _prices(rng: random.Random, category: str) -> tuple[Decimal, Decimal | None]:
    low, high = words.PRICE_RANGES[category]
    cents = rng.randint(low // 100, high // 100) * 100 + rng.choice((99, 99, 50, 0))
    price = Decimal(min(max(cents, low), high)).scaleb(-2)  # keeps two decimals: 13.50
    if rng.random() >= 0.2:
        return price, None
    sale = (price * Decimal(rng.choice((60, 70, 75, 80, 90))) / 100).quantize(Decimal("0.01"))
    return price, max(sale, Decimal("0.01"))


# A category's word lists hold a few hundred titles: past this many draws of taken ones, number the title.
_TITLE_DRAWS = 200


def _unique_title(rng: random.Random, category: str, seen: set[str]) -> str:
    """Draw a title not taken yet (listings read like a real shop); once a category runs dry, number one."""
    title = _title(rng, category)
    for _ in range(_TITLE_DRAWS):
        if title not in seen:
            break
        title = _title(rng, category)
    numbered, volume = title, 2
    while numbered in seen:
        numbered, volume = f"{title}, Volume {volume}", volume + 1
    seen.add(numbered)
    return numbered


def _book_items(count: int) -> Iterator[Item]:
    """Yield `count` books; book n is the same whatever the count, so a larger seed extends a smaller one."""
    rng = random.Random(_RANDOM_SEED)
    homes = _authors_by_category()
    seen: set[str] = set()
    for n in range(count):
        category_index = rng.randrange(len(words.CATEGORIES))
        category = words.CATEGORIES[category_index]
        title = _unique_title(rng, category, seen)
        candidates = homes[category_index]
        authors = rng.sample(candidates, k=min(rng.choice((1,) * 7 + (2, 2, 3)), len(candidates)))
        price, price_sale = _prices(rng, category)
        command = CreateBook(
            book_id=stable_id("book", n),
            name=title,
            description=_description(rng, category, title),
            price=price,
            price_sale=price_sale,
            category_id=stable_id("category", category_index),
            publisher_id=stable_id("publisher", rng.randrange(len(words.PUBLISHERS))),
            author_ids=tuple(stable_id("author", a) for a in authors),
        )
        yield Item(f"seed:book:{n}", command)


def _what(item: Item) -> str:
    """Name what a seed command creates, for the summary: `seed:book:7` counts as books."""
    kind = item.key.split(":")[1]
    return _PLURALS.get(kind, f"{kind}s")


_PLURALS = {
    "category": "categories",
    "basket": "basket items",
    "address": "customers",
    "complete": "completions",
}


def plan(books: int) -> list[Item]:
    """Return every seed command, in the order they are sent."""
    book_ids = [stable_id("book", n) for n in range(books)]
    return [*_catalog_items(), *_book_items(books), *shopper_items(book_ids, stable_id)]


async def seed(target: Container | CommandBus, *, books: int = 300) -> SeedSummary:
    """Load the demo catalog and shoppers through the command bus; running it again changes nothing."""
    bus = target if isinstance(target, CommandBus) else target.commands
    before: Position | None = None
    if not isinstance(target, CommandBus):
        before = await target.event_store.head()
    created = 0
    counts: Counter[str] = Counter()
    for item in plan(books):
        result = await bus.dispatch(item.command, actor=ACTOR, idempotency_key=item.key)
        counts[_what(item)] += 1
        if before is not None and result.position > before:
            created += 1
    return SeedSummary(counts=dict(counts), created=None if before is None else created)
