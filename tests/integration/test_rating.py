"""Feedback on a real PostgreSQL and Redis: the reviewer rule, book ratings, compensation, redelivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from app.bus.messages import encode
from app.bus.workers import Workers
from app.commands import constraints
from app.commands.bus import CommandBus
from app.commands.rating_handlers import REVIEWER_SCOPE
from app.domain.catalog import commands as c
from app.domain.errors import ConflictError, NotFoundError
from app.domain.rating import rules
from app.domain.rating.commands import CreateFeedback, DeleteFeedback
from app.events.base import Metadata
from app.events.rating import FeedbackCreated
from app.eventstore import START, Position, RecordedEvent
from app.ids import new_id
from app.live.notices import CATALOG_TOPIC, book_topic, feedback_topic
from app.processes.feedback_check import ACTOR, NO_SUCH_BOOK, FeedbackCheck
from app.projections import ProjectionConsumer, table_prefix
from app.projections.catalog import CATALOG
from app.projections.rating import RATING
from app.projections.rebuild import rebuild
from app.queries.catalog import CatalogQueries
from app.queries.rating import FeedbackOrder, RatingQueries
from app.settings import Settings
from tests.integration.bus_support import BusEnv, bus_env, wait_until

ADMIN = "user:admin"
WITHIN = 20.0


@dataclass
class Shop:
    env: BusEnv
    bus: CommandBus
    check: FeedbackCheck
    workers: Workers
    books: CatalogQueries
    ratings: RatingQueries
    last: Position = field(default=START)  # of the newest write this module made

    async def book(self) -> str:
        category, publisher, author = new_id(), new_id(), new_id()
        suffix = new_id()[-12:]
        await self.run(c.CreateCategory(category_id=category, name=f"Category {suffix}"))
        await self.run(c.CreatePublisher(publisher_id=publisher, name=f"Publisher {suffix}"))
        await self.run(c.CreateAuthor(author_id=author, name="Ann Leckie"))
        book = c.CreateBook(
            book_id=new_id(),
            name="Ancillary Justice",
            price=Decimal("15.00"),
            category_id=category,
            publisher_id=publisher,
            author_ids=(author,),
        )
        return (await self.run(book)).entity_id

    async def run(self, command: Any, actor: str = ADMIN) -> Any:
        done = await self.bus.dispatch(command, actor=actor)
        self.last = max(self.last, done.position)
        return done

    async def review(
        self, book_id: str, rating: int, first: str = "Ann", last: str = "Leckie", customer: str | None = None
    ) -> str:
        """Review as `customer`; by default each pair of names is a customer of its own."""
        command = CreateFeedback(
            feedback_id=new_id(),
            book_id=book_id,
            customer_id=customer or f"reader:{first}:{last}",
            first_name=first,
            last_name=last,
            comment=None,
            rating=rating,
        )
        return (await self.run(command, actor="user:reader")).entity_id

    async def settled(self, position: Position) -> None:
        """Wait until both projections and the feedback check have passed `position`."""

        async def passed() -> bool:
            rows = await self.env.pool.fetch(
                """SELECT transaction_id, global_position FROM read.projections WHERE name = ANY($1)
                UNION ALL SELECT transaction_id, global_position FROM bus.checkpoints WHERE name = $2""",
                [CATALOG.name, RATING.name],
                self.check.name,
            )
            return len(rows) == 3 and all(Position(r[0], r[1]) >= position for r in rows)

        await wait_until(passed, what=f"every consumer to pass {position}", within=WITHIN)

    async def everything_settled(self) -> None:
        """Wait until every consumer has passed every write made so far (compensations excepted)."""
        await self.settled(self.last)

    async def rating_of(self, book_id: str) -> tuple[float, int]:
        (row,) = await self.books.books_by_ids([book_id])
        assert row is not None
        return row.average_rating, row.total_reviews

    async def stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self.env.store.read_stream(stream_id)

    async def reserved(self, feedback_id: str) -> bool:
        query = "SELECT EXISTS (SELECT 1 FROM eventstore.reservations WHERE scope = $1 AND owner = $2)"
        return bool(await self.env.pool.fetchval(query, REVIEWER_SCOPE, feedback_id))


@pytest.fixture(scope="module")
async def shop(make_settings: Callable[[], Settings]) -> AsyncIterator[Shop]:
    settings = make_settings()
    async with bus_env(settings) as env:
        bus = CommandBus(env.pool, env.store)
        check = FeedbackCheck(bus, env.store)
        consumers = [ProjectionConsumer(CATALOG), ProjectionConsumer(RATING), check]
        workers = Workers(settings, env.pool, env.redis, env.store, consumers, env)
        await workers.start()
        try:
            yield Shop(env, bus, check, workers, CatalogQueries(env.pool), RatingQueries(env.pool))
        finally:
            await workers.stop()


# ---- one feedback per customer and book


async def test_a_second_feedback_of_the_same_customer_on_a_book_is_a_conflict(shop: Shop) -> None:
    book = await shop.book()
    await shop.review(book, 4, "Ann", "Leckie", customer="ann")

    for first, last in (("Ann", "Leckie"), ("Mary", "Evans"), ("Al\u200bice", "Smith")):
        with pytest.raises(ConflictError):
            await shop.review(book, 2, first, last, customer="ann")

    # Another customer under the same names, and the same customer on another book, are welcome.
    await shop.review(book, 3, "Ann", "Leckie", customer="someone-else")
    await shop.review(await shop.book(), 5, "Ann", "Leckie", customer="ann")
    await shop.everything_settled()
    assert (await shop.ratings.list_feedbacks(book)).total_count == 2


async def test_feedback_stored_before_authors_reads_as_v2_and_is_still_deleted(shop: Shop) -> None:
    book, old = await shop.book(), new_id()
    v1 = {"feedback_id": old, "book_id": book, "first_name": "Ann", "last_name": "Leckie"}
    async with shop.env.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO eventstore.events
               (stream_id, stream_type, stream_version, event_id, event_type, schema_version, data, metadata)
               VALUES ($1, 'Feedback', 1, $2, 'FeedbackCreated', 1, $3::jsonb, $4::jsonb)""",
            old,
            uuid.uuid4(),
            json.dumps(v1 | {"comment": None, "rating": 1}),
            json.dumps(Metadata(actor="user:reader", correlation_id="c").as_dict()),
        )
        # What the name-keyed rule reserved for it.
        legacy = rules.legacy_reviewer_key(book, "Ann", "Leckie")
        assert await constraints.reserve(conn, REVIEWER_SCOPE, legacy, old)

    [recorded] = await shop.stream(old)
    assert isinstance(recorded.event, FeedbackCreated) and recorded.event.customer_id is None
    # The names it squatted no longer stand in a customer's way.
    await shop.review(book, 5, "Ann", "Leckie", customer="ann")
    await shop.run(DeleteFeedback(feedback_id=old))
    assert not await shop.reserved(old)


async def test_deleting_feedback_releases_its_reviewer(shop: Shop) -> None:
    book = await shop.book()
    first = await shop.review(book, 1)
    assert await shop.reserved(first)

    await shop.run(DeleteFeedback(feedback_id=first))

    assert not await shop.reserved(first)
    second = await shop.review(book, 5)
    assert await shop.reserved(second)
    types = [r.event_type for r in await shop.stream(first)]
    assert types == ["FeedbackCreated", "FeedbackDeleted"]


async def test_deleting_unknown_or_deleted_feedback_is_not_found(shop: Shop) -> None:
    book = await shop.book()
    feedback = await shop.review(book, 3)
    await shop.run(DeleteFeedback(feedback_id=feedback))

    with pytest.raises(NotFoundError):
        await shop.run(DeleteFeedback(feedback_id=feedback))
    with pytest.raises(NotFoundError):
        await shop.run(DeleteFeedback(feedback_id=new_id()))
    with pytest.raises(NotFoundError):  # an id of another kind of stream
        await shop.run(DeleteFeedback(feedback_id=book))
    assert len(await shop.stream(feedback)) == 2


# ---- the book's rating in the catalog read model


async def test_average_rating_and_total_reviews_follow_every_create_and_delete(shop: Shop) -> None:
    book = await shop.book()
    await shop.everything_settled()
    (before,) = await shop.books.books_by_ids([book])
    assert before is not None and (before.average_rating, before.total_reviews) == (0.0, 0)

    five = await shop.review(book, 5, "A", "One")
    four = await shop.review(book, 4, "B", "Two")
    await shop.review(book, 4, "C", "Three")
    await shop.everything_settled()
    assert await shop.rating_of(book) == (13 / 3, 3)

    await shop.run(DeleteFeedback(feedback_id=five))
    await shop.everything_settled()
    assert await shop.rating_of(book) == (4.0, 2)

    zero = await shop.review(book, 0, "D", "Four")
    await shop.everything_settled()
    assert await shop.rating_of(book) == (8 / 3, 3)

    for feedback in (four, zero):
        await shop.run(DeleteFeedback(feedback_id=feedback))
    await shop.everything_settled()
    assert await shop.rating_of(book) == (4.0, 1)

    # The book itself did not change: its version and updated_at stay.
    (after,) = await shop.books.books_by_ids([book])
    assert after is not None and (after.version, after.updated_at) == (before.version, before.updated_at)


async def test_rating_changes_are_announced_on_the_book_and_feedback_topics(shop: Shop) -> None:
    book = await shop.book()
    feedback = await shop.review(book, 2)
    await shop.everything_settled()
    position = (await shop.stream(feedback))[0].position

    def announced() -> set[tuple[str, str, str, str]]:
        return {
            (n.topic, n.kind, n.entity, n.entity_id) for n in shop.env.published if n.position == position
        }

    async def all_three() -> bool:  # notices are published just after their batch commits
        return len(announced()) >= 3

    await wait_until(all_three, what="the notices of the feedback", within=WITHIN)
    assert announced() == {
        (book_topic(book), "UPDATED", "Book", book),
        (CATALOG_TOPIC, "UPDATED", "Book", book),
        (feedback_topic(book), "CREATED", "Feedback", feedback),
    }


async def test_feedbacks_are_listed_newest_first_or_by_rating(shop: Shop) -> None:
    book = await shop.book()
    ids = [await shop.review(book, rating, f"Reader{i}", "X") for i, rating in enumerate((3, 5, 3, 1))]
    await shop.everything_settled()

    newest = await shop.ratings.list_feedbacks(book, first=3)
    assert [f.id for f in newest.nodes] == ids[::-1][:3]
    assert (newest.total_count, newest.has_next_page) == (4, True)
    rest = await shop.ratings.list_feedbacks(book, first=3, after=newest.end_cursor)
    assert [f.id for f in rest.nodes] == [ids[0]] and not rest.has_next_page

    by_rating: list[str] = []
    after = None
    while True:
        page = await shop.ratings.list_feedbacks(book, first=1, after=after, order_by=FeedbackOrder.RATING)
        by_rating += [f.id for f in page.nodes]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert by_rating == [ids[1], ids[2], ids[0], ids[3]]
    assert (await shop.ratings.list_feedbacks(new_id())).total_count == 0


# ---- compensation: feedback on a book that does not exist


async def _compensated(shop: Shop, feedback_id: str) -> list[RecordedEvent]:
    async def deleted() -> bool:
        return len(await shop.stream(feedback_id)) == 2

    await wait_until(deleted, what="the feedback check to remove the feedback", within=WITHIN)
    events = await shop.stream(feedback_id)
    await shop.settled(events[-1].position)
    return events


async def test_feedback_on_an_unknown_book_is_removed_by_an_event(shop: Shop) -> None:
    unknown = new_id()
    feedback = await shop.review(unknown, 5, "Nobody", "Reads")

    created, removed = await _compensated(shop, feedback)

    assert removed.event_type == "FeedbackDeleted"
    assert removed.data["reason"] == NO_SUCH_BOOK
    assert (removed.data["book_id"], removed.data["rating"]) == (unknown, 5)
    assert removed.metadata["actor"] == ACTOR
    assert removed.metadata["causation_id"] == created.event_id
    assert removed.metadata["correlation_id"] == created.metadata["correlation_id"]
    assert not await shop.reserved(feedback)
    assert (await shop.ratings.list_feedbacks(unknown)).total_count == 0
    assert await shop.ratings.feedbacks_by_ids([feedback]) == [None]

    def kinds() -> list[str]:
        return [n.kind for n in shop.env.published if n.topic == feedback_topic(unknown)]

    async def both() -> bool:  # notices are published just after their batch commits
        return len(kinds()) >= 2

    await wait_until(both, what="the notices of the feedback", within=WITHIN)
    assert kinds() == ["CREATED", "DELETED"]


async def test_feedback_on_a_deleted_book_is_removed_and_the_book_row_is_untouched(shop: Shop) -> None:
    book = await shop.book()
    await shop.run(c.DeleteBook(book_id=book))
    feedback = await shop.review(book, 1)

    _, removed = await _compensated(shop, feedback)

    assert removed.data["reason"] == NO_SUCH_BOOK
    # The view hides deleted books: look at the row in the table the view currently reads.
    generation = await shop.env.pool.fetchval(
        "SELECT generation FROM read.projections WHERE name = $1", "catalog"
    )
    table = f"read.{table_prefix(CATALOG.name, generation)}books"
    row = await shop.env.pool.fetchrow(
        f"SELECT rating_sum, total_reviews, average_rating, deleted FROM {table} WHERE id = $1", book
    )
    assert row is not None and tuple(row) == (0.0, 0, 0.0, True)


async def test_feedback_on_an_existing_book_is_kept(shop: Shop) -> None:
    book = await shop.book()
    feedback = await shop.review(book, 3)
    await shop.everything_settled()
    assert len(await shop.stream(feedback)) == 1
    assert await shop.rating_of(book) == (3.0, 1)


async def test_the_check_applied_twice_compensates_once(shop: Shop) -> None:
    feedback = await shop.review(new_id(), 2)
    created, _ = await _compensated(shop, feedback)

    # As a dead letter retry would: apply alone, inside a transaction, a second time.
    async with shop.env.pool.acquire() as conn, conn.transaction():
        assert await shop.check.apply(conn, [created]) == []

    assert len(await shop.stream(feedback)) == 2


# ---- exactly once


async def test_redelivered_feedback_events_apply_once(shop: Shop) -> None:
    book = await shop.book()
    first = await shop.review(book, 5, "R", "One")
    second = await shop.review(book, 1, "R", "Two")
    await shop.everything_settled()
    events = [(await shop.stream(f))[0] for f in (first, second)]

    # The same messages XADDed again, as a relay that crashed before saving its checkpoint does.
    stream = shop.env.settings.events_stream
    await shop.env.redis.xadd(stream, encode(events[1], events[0].position))  # type: ignore[arg-type]
    await shop.env.redis.xadd(stream, encode(events[0], events[0].position))  # type: ignore[arg-type]
    probe = await shop.review(book, 3, "R", "Three")
    await shop.everything_settled()

    assert await shop.rating_of(book) == (3.0, 3)
    assert (await shop.ratings.list_feedbacks(book)).total_count == 3
    assert [len(await shop.stream(f)) for f in (first, second, probe)] == [1, 1, 1]


async def test_a_rebuild_replays_ratings_to_the_same_numbers(shop: Shop) -> None:
    book = await shop.book()
    kept = await shop.review(book, 5, "K", "One")
    gone = await shop.review(book, 2, "K", "Two")
    await shop.run(DeleteFeedback(feedback_id=gone))
    await shop.review(book, 4, "K", "Three")
    await shop.review(new_id(), 1, "K", "Four")  # compensated
    await shop.everything_settled()
    expected_rating = await shop.rating_of(book)
    expected_list = await shop.ratings.list_feedbacks(book)
    assert expected_rating == (4.5, 2)

    for name in (CATALOG.name, RATING.name):
        await rebuild(shop.env.pool, shop.env.store, name)

    assert await shop.rating_of(book) == expected_rating
    rebuilt = await shop.ratings.list_feedbacks(book)
    assert rebuilt.nodes == expected_list.nodes and kept in [f.id for f in rebuilt.nodes]
