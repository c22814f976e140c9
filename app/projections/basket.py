"""The basket projection: each customer's basket, its lines, and the book prices that value them.

Basket rows are guarded by the stream version (`version < $n`) and book rows by the book's, so
re-applying an event is a no-op and announces nothing. A catalog change of a book's name, price or
availability re-announces every basket that holds the book, on that basket's own topic.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable

import asyncpg

from app.bus.protocol import type_names
from app.events import basket as bev
from app.events import catalog as cev
from app.eventstore.types import RecordedEvent
from app.live.notices import ChangeNotice, basket_topic
from app.projections import basket_tables
from app.projections.base import Statement, announces

CREATED, UPDATED = "CREATED", "UPDATED"
ENTITY = "Basket"
BasketEvent = (
    bev.BasketItemAdded
    | bev.BasketItemQuantityChanged
    | bev.BasketItemRemoved
    | bev.BasketCleared
    | bev.BasketCheckedOut
    | bev.BasketCheckoutFailed
)

# One statement per basket event: `touched` moves the basket row to the event's version (no row when
# the event was already applied), and the line change runs only when it did. Returns whether the
# basket row is new (xmax = 0 only for an inserted row).
_TOUCH = """
WITH touched AS (
  INSERT INTO read.{p}baskets AS b (id, customer_id, version, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $4)
  ON CONFLICT (id) DO UPDATE
  SET version = EXCLUDED.version, updated_at = CASE WHEN $5 THEN EXCLUDED.updated_at ELSE b.updated_at END
  WHERE b.version < EXCLUDED.version
  RETURNING xmax = 0 AS created){change}
SELECT created FROM touched"""

_PUT_LINE = """,
changed AS (
  INSERT INTO read.{p}lines (basket_id, book_id, quantity, seq)
  SELECT $1, $6::uuid, $7::integer, $3 FROM touched
  ON CONFLICT (basket_id, book_id) DO UPDATE SET quantity = EXCLUDED.quantity)"""
_SET_QUANTITY = """,
changed AS (
  UPDATE read.{p}lines SET quantity = $7::integer
  WHERE basket_id = $1 AND book_id = $6::uuid AND EXISTS (SELECT FROM touched))"""
_REMOVE_LINE = """,
changed AS (
  DELETE FROM read.{p}lines WHERE basket_id = $1 AND book_id = $6::uuid AND EXISTS (SELECT FROM touched))"""
_EMPTY_BASKET = """,
changed AS (DELETE FROM read.{p}lines WHERE basket_id = $1 AND EXISTS (SELECT FROM touched))"""
# A checkout leaves exactly the lines it names as left. Setting them (not subtracting what was taken)
# also puts right a line added just before it whose event reaches the projection after it: the
# version guard then skips that older event.
_LEAVE_LINES = """,
left_over AS (
  SELECT * FROM unnest($6::uuid[], $7::integer[]) AS t (book_id, quantity)
  WHERE EXISTS (SELECT FROM touched)),
gone AS (
  DELETE FROM read.{p}lines l
  WHERE l.basket_id = $1 AND EXISTS (SELECT FROM touched)
    AND l.book_id NOT IN (SELECT book_id FROM left_over)),
changed AS (
  INSERT INTO read.{p}lines (basket_id, book_id, quantity, seq)
  SELECT $1, book_id, quantity, $3 FROM left_over
  ON CONFLICT (basket_id, book_id) DO UPDATE SET quantity = EXCLUDED.quantity)"""

# `_TOUCH` for a wave of different baskets at once (`Statement.many`): each argument is an array, one
# element per basket. $5 (whether the event touches the basket) is the same for every basket of one line
# change, so what it decides is written in.
_TOUCH_MANY = """
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::integer[], $4::timestamptz[], $5::boolean[]{columns})
    AS i (basket_id, customer_id, version, at, touches{names})),
touched AS (
  INSERT INTO read.{p}baskets AS b (id, customer_id, version, created_at, updated_at)
  SELECT basket_id, customer_id, version, at, at FROM input
  ON CONFLICT (id) DO UPDATE
  SET version = EXCLUDED.version, updated_at = {updated_at}
  WHERE b.version < EXCLUDED.version
  RETURNING b.id){change}
SELECT count(*) FROM touched"""
_BOOK_LINE = ", $6::uuid[], $7::integer[]", ", book_id, quantity"
# By line change: its clause for a wave, and the columns and names of the arguments from $6 on.
_MANY = {
    "": ("", "", ""),
    _PUT_LINE: (
        """,
changed AS (
  INSERT INTO read.{p}lines (basket_id, book_id, quantity, seq)
  SELECT i.basket_id, i.book_id, i.quantity, i.version FROM input i JOIN touched t ON t.id = i.basket_id
  ON CONFLICT (basket_id, book_id) DO UPDATE SET quantity = EXCLUDED.quantity)""",
        *_BOOK_LINE,
    ),
    _SET_QUANTITY: (
        """,
changed AS (
  UPDATE read.{p}lines l SET quantity = i.quantity FROM input i JOIN touched t ON t.id = i.basket_id
  WHERE l.basket_id = i.basket_id AND l.book_id = i.book_id)""",
        *_BOOK_LINE,
    ),
    _REMOVE_LINE: (
        """,
changed AS (
  DELETE FROM read.{p}lines l USING input i JOIN touched t ON t.id = i.basket_id
  WHERE l.basket_id = i.basket_id AND l.book_id = i.book_id)""",
        ", $6::uuid[]",
        ", book_id",
    ),
    _EMPTY_BASKET: (
        """,
changed AS (DELETE FROM read.{p}lines l USING touched t WHERE l.basket_id = t.id)""",
        "",
        "",
    ),
}

# Returns the book's id and whether what baskets show of it changed (NULL for a book seen the first time).
_PUT_BOOK = """
WITH old AS (SELECT name, unit_price, available FROM read.{p}books WHERE id = $1)
INSERT INTO read.{p}books AS k (id, name, unit_price, available, version) VALUES ($1, $2, $3, true, $4)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, unit_price = EXCLUDED.unit_price, available = true, version = EXCLUDED.version
WHERE k.version < EXCLUDED.version
RETURNING k.id,
    (SELECT (o.name, o.unit_price, o.available) IS DISTINCT FROM (k.name, k.unit_price, k.available)
     FROM old o) AS changed"""
_DELETE_BOOK = """
UPDATE read.{p}books SET available = false, version = $2 WHERE id = $1 AND version < $2
RETURNING id, true AS changed"""
_HOLDERS = """
SELECT b.id::text, b.customer_id::text FROM read.{p}lines l JOIN read.{p}baskets b ON b.id = l.basket_id
WHERE l.book_id = $1 ORDER BY b.id"""


def _notices(r: RecordedEvent, kind: str, baskets: Iterable[tuple[str, str]]) -> list[ChangeNotice]:
    """Announce each (basket id, customer id) on the customer's basket topic."""
    return [
        ChangeNotice(
            position=r.position, topic=basket_topic(customer), kind=kind, entity=ENTITY, entity_id=basket
        )
        for basket, customer in baskets
    ]


def _line_change(e: BasketEvent) -> tuple[str, tuple[object, ...]] | None:
    """Return the line change (a `_TOUCH` clause, unformatted) and its arguments from $6 on."""
    if isinstance(e, bev.BasketItemAdded):
        return _PUT_LINE, (e.book_id, e.quantity)
    if isinstance(e, bev.BasketItemQuantityChanged):
        return _SET_QUANTITY, (e.book_id, e.quantity)
    if isinstance(e, bev.BasketItemRemoved):
        return _REMOVE_LINE, (e.book_id,)
    if isinstance(e, bev.BasketCheckedOut) and e.lines:
        return _LEAVE_LINES, ([t.book_id for t in e.left], [t.quantity for t in e.left])
    if isinstance(e, bev.BasketCleared | bev.BasketCheckedOut):
        return _EMPTY_BASKET, ()  # a v1 checkout names no lines: it took them all
    return None  # a failed checkout changes nothing a customer sees


@functools.lru_cache(maxsize=64)
def _touch(p: str, change: str) -> str:
    """Return `_TOUCH` with `change` for `p`'s tables (formatted once: a rebuild makes one per event)."""
    return _TOUCH.format(p=p, change=change.format(p=p))


@functools.lru_cache(maxsize=64)
def _touch_many(p: str, change: str) -> str | None:
    """Return `_TOUCH_MANY` with `change` for `p`'s tables; None for a checkout's lines (an array each)."""
    if change not in _MANY:
        return None
    clause, columns, names = _MANY[change]
    updated_at = "EXCLUDED.updated_at" if change else "b.updated_at"
    return _TOUCH_MANY.format(
        p=p, columns=columns, names=names, updated_at=updated_at, change=clause.format(p=p)
    )


def _basket_statement(r: RecordedEvent, p: str, e: BasketEvent) -> Statement:
    change, line_args = _line_change(e) or ("", ())
    args = (e.basket_id, e.customer_id, r.stream_version, r.recorded_at, bool(change), *line_args)
    return Statement(_touch(p, change), args, f"basket:{e.basket_id}", _touch_many(p, change))


async def _basket_changed(
    conn: asyncpg.Connection, r: RecordedEvent, p: str, e: BasketEvent
) -> list[ChangeNotice]:
    statement = _basket_statement(r, p, e)
    created = await conn.fetchval(statement.sql, *statement.args)
    if created is None or _line_change(e) is None:
        return []
    return _notices(r, CREATED if created else UPDATED, [(e.basket_id, e.customer_id)])


def _book_statement(
    r: RecordedEvent, p: str, e: cev.BookCreated | cev.BookUpdated | cev.BookDeleted
) -> Statement:
    if isinstance(e, cev.BookDeleted):
        args: tuple[object, ...] = (e.book_id, r.stream_version)
        return Statement(_DELETE_BOOK.format(p=p), args, f"book:{e.book_id}", keyed=True)
    unit_price = e.price if e.price_sale is None else e.price_sale
    args = (e.book_id, e.name, unit_price, r.stream_version)
    return Statement(_PUT_BOOK.format(p=p), args, f"book:{e.book_id}", keyed=True)


async def _announce_holders(
    conn: asyncpg.Connection, r: RecordedEvent, p: str, book_id: str
) -> list[ChangeNotice]:
    holders = await conn.fetch(_HOLDERS.format(p=p), book_id)
    return _notices(r, UPDATED, [(row[0], row[1]) for row in holders])


class BasketProjection:
    """Customers' baskets with lines valued at the catalog's current prices."""

    name = "basket"
    version = 1
    handles = type_names(*typing.get_args(BasketEvent), cev.BookCreated, cev.BookUpdated, cev.BookDeleted)
    # A failed checkout changes no line; a book no basket holds yet (BookCreated) has no one to tell.
    topics = announces(
        dict.fromkeys(
            (
                bev.BasketItemAdded,
                bev.BasketItemQuantityChanged,
                bev.BasketItemRemoved,
                bev.BasketCleared,
                bev.BasketCheckedOut,
                cev.BookUpdated,
                cev.BookDeleted,
            ),
            (basket_topic,),
        )
    )

    def ddl(self, prefix: str) -> list[str]:
        return basket_tables.ddl(prefix)

    def deferred_ddl(self, prefix: str) -> list[str]:
        return basket_tables.deferred_ddl(prefix)

    def view_ddl(self, prefix: str) -> list[str]:
        return basket_tables.view_ddl(prefix)

    def drop_ddl(self, prefix: str) -> list[str]:
        return basket_tables.drop_ddl(prefix)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str) -> list[ChangeNotice]:
        """Apply one event to `prefix`'s tables; events of other kinds change nothing."""
        e = event.event
        if isinstance(e, BasketEvent):
            return await _basket_changed(conn, event, prefix, e)
        if isinstance(e, cev.BookCreated | cev.BookUpdated | cev.BookDeleted):
            statement = _book_statement(event, prefix, e)
            return await self.announce(
                conn, event, prefix, await conn.fetchrow(statement.sql, *statement.args)
            )
        return []

    def statement(self, event: RecordedEvent, prefix: str) -> Statement | None:
        e = event.event
        if isinstance(e, BasketEvent):
            return _basket_statement(event, prefix, e)
        if isinstance(e, cev.BookCreated | cev.BookUpdated | cev.BookDeleted):
            return _book_statement(event, prefix, e)
        return None

    async def announce(
        self, conn: asyncpg.Connection, event: RecordedEvent, prefix: str, row: asyncpg.Record | None
    ) -> list[ChangeNotice]:
        """Announce a book's change to the baskets holding it (the book statements' run changes no line)."""
        e = event.event
        if (
            row is None
            or not row["changed"]
            or not isinstance(e, cev.BookCreated | cev.BookUpdated | cev.BookDeleted)
        ):
            return []
        return await _announce_holders(conn, event, prefix, e.book_id)


BASKET = BasketProjection()
