"""Ordering read functions over read.buyer_view and read.order_view: profiles, orders, newest-first lists.

`buyer_id` arguments scope a read to one buyer's data: the schema passes the caller's id for
customers, so another customer's order reads exactly like a missing one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from app.db import unavailable_when_down
from app.domain.errors import ValidationError
from app.domain.fields import check_id
from app.ids import is_id
from app.queries.paging import (
    Edge,
    Keyset,
    Page,
    Position,
    check_first,
    decode_cursor,
    make_page,
    timestamp_key,
)

ORDER_STATUSES = ("NEW", "COMPLETED", "CANCELLED")
_NEWEST = "order:newest"
_ORDER_COLUMNS = """id, buyer_id, buyer_name, buyer_email, street, city, province, status, note, lines,
    total, cancel_reason, version, created_at, updated_at"""
_ORDERS = Keyset("read.order_view", _ORDER_COLUMNS, "created_at", "timestamptz", descending=True)
_BUYER_COLUMNS = "id, name, email, street, city, province, version, created_at, updated_at"


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressRow:
    street: str
    city: str
    province: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BuyerRow:
    id: str
    name: str
    email: str | None
    address: AddressRow
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> BuyerRow:
        return cls(
            id=str(r["id"]),
            name=r["name"],
            email=r["email"],
            address=AddressRow(street=r["street"], city=r["city"], province=r["province"]),
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLineRow:
    book_id: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    id: str
    buyer_id: str
    buyer_name: str
    buyer_email: str | None
    address: AddressRow  # where the order ships: the buyer's address when it was placed
    status: str
    note: str | None
    lines: tuple[OrderLineRow, ...]
    total: Decimal
    cancel_reason: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> OrderRow:
        lines = tuple(
            OrderLineRow(
                book_id=x["book_id"],
                name=x["name"],
                quantity=x["quantity"],
                unit_price=Decimal(x["unit_price"]),
            )
            for x in json.loads(r["lines"])
        )
        return cls(
            id=str(r["id"]),
            buyer_id=str(r["buyer_id"]),
            buyer_name=r["buyer_name"],
            buyer_email=r["buyer_email"],
            address=AddressRow(street=r["street"], city=r["city"], province=r["province"]),
            status=r["status"],
            note=r["note"],
            lines=lines,
            total=r["total"],
            cancel_reason=r["cancel_reason"],
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


def _canonical(value: str) -> str | None:
    return str(uuid.UUID(value)) if isinstance(value, str) and is_id(value) else None


class OrderingQueries:
    """Read the ordering views; never touches aggregates or events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @unavailable_when_down
    async def buyer(self, buyer_id: str) -> BuyerRow | None:
        """Return a buyer's profile; None before their first address (or for a malformed id)."""
        canonical = _canonical(buyer_id)
        if canonical is None:
            return None
        record = await self._pool.fetchrow(
            f"SELECT {_BUYER_COLUMNS} FROM read.buyer_view WHERE id = $1::uuid", canonical
        )
        return None if record is None else BuyerRow.from_record(record)

    @unavailable_when_down
    async def order(self, order_id: str, *, buyer_id: str | None = None) -> OrderRow | None:
        """Return an order; None when unknown, malformed, or (with `buyer_id`) someone else's."""
        canonical = _canonical(order_id)
        if canonical is None:
            return None
        record = await self._pool.fetchrow(
            f"SELECT {_ORDER_COLUMNS} FROM read.order_view WHERE id = $1::uuid", canonical
        )
        if record is None or (buyer_id is not None and str(record["buyer_id"]) != _canonical(buyer_id)):
            return None
        return OrderRow.from_record(record)

    @unavailable_when_down
    async def list_orders(
        self,
        *,
        first: int = 20,
        after: str | None = None,
        status: str | None = None,
        buyer_id: str | None = None,
        scope: str | None = None,
    ) -> Page[OrderRow]:
        """Return one page of orders, newest first; `scope` (a buyer id) bounds what may be seen at all."""
        check_first(first)
        args: list[Any] = []
        conditions = ["TRUE"]
        for value in (buyer_id, scope):
            if value is not None:
                args.append(check_id("buyerId", value))
                conditions.append(f"buyer_id = ${len(args)}::uuid")
        if status is not None:
            if status not in ORDER_STATUSES:
                raise ValidationError.single("status", f"Must be one of {', '.join(ORDER_STATUSES)}.")
            args.append(status)
            conditions.append(f"status = ${len(args)}")
        cursor = None if after is None else decode_cursor(after, _NEWEST, timestamp_key)
        count_sql = _ORDERS.count_sql(conditions)
        sql, page_args = _ORDERS.page_sql(conditions, args, cursor, first)
        async with self._pool.acquire() as conn:
            records = await conn.fetch(sql, *page_args)
            total = await conn.fetchval(count_sql, *args)
        edges = [Edge(_position(r), OrderRow.from_record(r)) for r in records]
        return make_page(edges, first, after=after, total_count=total)


def _position(record: asyncpg.Record) -> Position:
    return _NEWEST, record["created_at"].isoformat(), str(record["id"])
