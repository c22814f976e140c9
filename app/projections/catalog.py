"""The catalog projection: denormalized books plus authors, categories and publishers.

Every update is guarded by the stream version (`version < $n`), so re-applying an event is a no-op
and announces nothing; the runner already skips events at or below the checkpoint.
Ratings come from feedback streams, not the book's, so no book version guards them: they count on
that checkpoint (one transaction with the batch) and on commit order when a rebuild replays them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import asyncpg

from app.bus.protocol import type_names
from app.domain.catalog.status import BookStatus
from app.events import catalog as ev
from app.events.base import Event
from app.events.rating import FeedbackCreated, FeedbackDeleted
from app.eventstore.types import RecordedEvent
from app.live.notices import CATALOG_TOPIC, ChangeNotice, book_topic
from app.projections import catalog_tables
from app.projections.base import Statement, announces

CREATED, UPDATED, DELETED = "CREATED", "UPDATED", "DELETED"

_BOOK_NAMES = """
    coalesce((SELECT name FROM read.{p}categories WHERE id = $7), ''),
    coalesce((SELECT name FROM read.{p}publishers WHERE id = $8), ''),
    ARRAY(SELECT coalesce(a.name, '')
          FROM unnest($9::uuid[]) WITH ORDINALITY AS u(id, ord)
          LEFT JOIN read.{p}authors a ON a.id = u.id ORDER BY u.ord)"""

_INSERT_BOOK = f"""
INSERT INTO read.{{p}}books (id, name, description, price, price_sale, status, category_id, publisher_id,
    author_ids, version, created_at, updated_at, category_name, publisher_name, author_names)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::uuid[], $10, $11, $11, {_BOOK_NAMES}
ON CONFLICT (id) DO NOTHING
RETURNING id"""

_UPDATE_BOOK = f"""
UPDATE read.{{p}}books SET name = $2, description = $3, price = $4, price_sale = $5, status = $6,
    category_id = $7, publisher_id = $8, author_ids = $9::uuid[], version = $10, updated_at = $11,
    (category_name, publisher_name, author_names) = (SELECT {_BOOK_NAMES})
WHERE id = $1 AND version < $10
RETURNING id"""

_DELETE_BOOK = """
UPDATE read.{p}books SET deleted = true, version = $2, updated_at = $3
WHERE id = $1 AND version < $2 RETURNING id"""

_INSERT_NAMED = """
INSERT INTO read.{p}{table} (id, name, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (id) DO NOTHING RETURNING id"""

_RENAME_NAMED = """
UPDATE read.{p}{table} SET name = $2, version = $3, updated_at = $4
WHERE id = $1 AND version < $3 RETURNING id"""

_DELETE_NAMED = """
UPDATE read.{p}{table} SET deleted = true, version = $2, updated_at = $3
WHERE id = $1 AND version < $2 RETURNING id"""

# The average is computed afresh from sum and count (no drift); the book's version and updated_at stay,
# since the book itself did not change. A deleted row keeps counting, so create and delete stay paired.
_RATE_BOOK = """
UPDATE read.{p}books SET rating_sum = rating_sum + $2, total_reviews = total_reviews + $3,
    average_rating = CASE WHEN total_reviews + $3 = 0 THEN 0
                          ELSE (rating_sum + $2) / (total_reviews + $3) END
WHERE id = $1 RETURNING id, deleted"""

# Renames fan out to every book row that shows the name; book version and updated_at stay, since
# the book itself did not change. An author keeps its position in author_names.
_FAN_OUT = {
    "authors": """UPDATE read.{p}books SET author_names[array_position(author_ids, $1::uuid)] = $2
                  WHERE author_ids @> ARRAY[$1::uuid] RETURNING id, deleted""",
    "categories": """UPDATE read.{p}books SET category_name = $2
                     WHERE category_id = $1 RETURNING id, deleted""",
    "publishers": """UPDATE read.{p}books SET publisher_name = $2
                     WHERE publisher_id = $1 RETURNING id, deleted""",
}


@dataclass(frozen=True)
class _Named:
    """How one named entity (author, category, publisher) maps to its table."""

    entity: str
    table: str
    id_field: str


_AUTHOR = _Named("Author", "authors", "author_id")
_CATEGORY = _Named("Category", "categories", "category_id")
_PUBLISHER = _Named("Publisher", "publishers", "publisher_id")


def _notice(recorded: RecordedEvent, topic: str, kind: str, entity: str, entity_id: str) -> ChangeNotice:
    return ChangeNotice(
        position=recorded.position, topic=topic, kind=kind, entity=entity, entity_id=entity_id
    )


def _book_notices(recorded: RecordedEvent, kind: str, book_id: str) -> list[ChangeNotice]:
    return [
        _notice(recorded, CATALOG_TOPIC, kind, "Book", book_id),
        _notice(recorded, book_topic(book_id), kind, "Book", book_id),
    ]


def _book_args(e: ev.BookCreated | ev.BookUpdated, status: str, r: RecordedEvent) -> list[object]:
    return [
        e.book_id,
        e.name,
        e.description,
        e.price,
        e.price_sale,
        status,
        e.category_id,
        e.publisher_id,
        list(e.author_ids),
        r.stream_version,
        r.recorded_at,
    ]


# A book's notices, and a named entity's by kind of change: a rename also reaches the books showing the name.
_BOOK_TOPICS = (CATALOG_TOPIC, book_topic)
_NAMED_TOPICS = {CREATED: (CATALOG_TOPIC,), UPDATED: _BOOK_TOPICS, DELETED: (CATALOG_TOPIC,)}

_NAMED_EVENTS: dict[type[Event], tuple[str, _Named]] = {
    ev.AuthorCreated: (CREATED, _AUTHOR),
    ev.AuthorRenamed: (UPDATED, _AUTHOR),
    ev.AuthorDeleted: (DELETED, _AUTHOR),
    ev.CategoryCreated: (CREATED, _CATEGORY),
    ev.CategoryRenamed: (UPDATED, _CATEGORY),
    ev.CategoryDeleted: (DELETED, _CATEGORY),
    ev.PublisherCreated: (CREATED, _PUBLISHER),
    ev.PublisherRenamed: (UPDATED, _PUBLISHER),
    ev.PublisherDeleted: (DELETED, _PUBLISHER),
}


def _statement(r: RecordedEvent, p: str) -> Statement | None:
    """Key book rows by book; a named entity's change orders against every book (they show names)."""
    e = r.event
    if isinstance(e, ev.BookCreated | ev.BookUpdated):
        sql, status = (
            (_INSERT_BOOK, BookStatus.IN_STOCK.value)
            if isinstance(e, ev.BookCreated)
            else (_UPDATE_BOOK, e.status)
        )
        return Statement(sql.format(p=p), tuple(_book_args(e, status, r)), f"book:{e.book_id}", keyed=True)
    if isinstance(e, ev.BookDeleted):
        args: tuple[object, ...] = (e.book_id, r.stream_version, r.recorded_at)
        return Statement(_DELETE_BOOK.format(p=p), args, f"book:{e.book_id}", keyed=True)
    if isinstance(e, FeedbackCreated | FeedbackDeleted):
        sign = 1 if isinstance(e, FeedbackCreated) else -1
        args = (e.book_id, float(sign * e.rating), sign)
        return Statement(_RATE_BOOK.format(p=p), args, f"book:{e.book_id}", keyed=True)
    named = _NAMED_EVENTS.get(type(e))
    if named is None or named[0] == UPDATED:
        return None  # a rename fans out to books only when it applied
    kind, entity = named
    fields = dataclasses.asdict(e)
    entity_id = fields[entity.id_field]
    if kind == CREATED:
        args = (entity_id, fields["name"], r.stream_version, r.recorded_at)
        return Statement(_INSERT_NAMED.format(p=p, table=entity.table), args, None, keyed=True)
    args = (entity_id, r.stream_version, r.recorded_at)
    return Statement(_DELETE_NAMED.format(p=p, table=entity.table), args, None, keyed=True)


def _announce(r: RecordedEvent, row: asyncpg.Record | None) -> list[ChangeNotice]:
    """Return the notices of an event whose keyed statement returned `row` (None: it changed nothing)."""
    e = r.event
    if row is None:
        return []
    if isinstance(e, ev.BookCreated | ev.BookUpdated | ev.BookDeleted):
        kind = (
            CREATED
            if isinstance(e, ev.BookCreated)
            else UPDATED
            if isinstance(e, ev.BookUpdated)
            else DELETED
        )
        return _book_notices(r, kind, e.book_id)
    if isinstance(e, FeedbackCreated | FeedbackDeleted):
        # Feedback on a deleted book still counts in its rating, but no one follows that book any more.
        return [] if row["deleted"] else _book_notices(r, UPDATED, e.book_id)
    kind, named = _NAMED_EVENTS[type(e)]
    return [_notice(r, CATALOG_TOPIC, kind, named.entity, getattr(e, named.id_field))]


async def _named_renamed(
    conn: asyncpg.Connection, r: RecordedEvent, p: str, named: _Named
) -> list[ChangeNotice]:
    fields = dataclasses.asdict(r.event)
    entity_id: str = fields[named.id_field]
    name: str = fields["name"]
    sql = _RENAME_NAMED.format(p=p, table=named.table)
    if await conn.fetchval(sql, entity_id, name, r.stream_version, r.recorded_at) is None:
        return []
    books = await conn.fetch(_FAN_OUT[named.table].format(p=p), entity_id, name)
    notices = [_notice(r, CATALOG_TOPIC, UPDATED, named.entity, entity_id)]
    for book in books:
        if not book["deleted"]:
            book_id = str(book["id"])
            notices.append(_notice(r, book_topic(book_id), UPDATED, "Book", book_id))
    return notices


class CatalogProjection:
    """Books denormalized for listing and search, and the named entities they refer to."""

    name = "catalog"
    version = 1
    handles = type_names(
        ev.BookCreated, ev.BookUpdated, ev.BookDeleted, FeedbackCreated, FeedbackDeleted, *_NAMED_EVENTS
    )
    topics = announces(
        {
            **dict.fromkeys((ev.BookCreated, ev.BookUpdated, ev.BookDeleted), _BOOK_TOPICS),
            **dict.fromkeys((FeedbackCreated, FeedbackDeleted), _BOOK_TOPICS),  # the book's rating
            **{cls: _NAMED_TOPICS[kind] for cls, (kind, _) in _NAMED_EVENTS.items()},
        }
    )

    def ddl(self, prefix: str) -> list[str]:
        return catalog_tables.ddl(prefix)

    def deferred_ddl(self, prefix: str) -> list[str]:
        return []

    def view_ddl(self, prefix: str) -> list[str]:
        return catalog_tables.view_ddl(prefix)

    def drop_ddl(self, prefix: str) -> list[str]:
        return catalog_tables.drop_ddl(prefix)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str) -> list[ChangeNotice]:
        """Apply one event to `prefix`'s tables; events of other contexts change nothing."""
        statement = _statement(event, prefix)
        if statement is not None:
            return _announce(event, await conn.fetchrow(statement.sql, *statement.args))
        named = _NAMED_EVENTS.get(type(event.event))
        return [] if named is None else await _named_renamed(conn, event, prefix, named[1])

    def statement(self, event: RecordedEvent, prefix: str) -> Statement | None:
        return _statement(event, prefix)

    async def announce(
        self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str, row: asyncpg.Record | None
    ) -> list[ChangeNotice]:
        return _announce(event, row)


CATALOG = CatalogProjection()
