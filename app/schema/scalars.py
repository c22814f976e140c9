"""Custom scalars: Decimal money as a two-decimal string, DateTime as ISO-8601 UTC."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import strawberry
from strawberry.types.scalar import ScalarDefinition


def serialize_decimal(value: decimal.Decimal) -> str:
    return f"{value:.2f}"


def parse_decimal(value: Any) -> decimal.Decimal:
    """Parse a JSON string or integer exactly; floats are refused because they round."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('Decimal must be a string such as "12.50"')
    try:
        parsed = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueError(f"not a decimal number: {str(value)[:40]!r}") from None
    if not parsed.is_finite():
        raise ValueError("Decimal must be a finite number")
    return parsed


def serialize_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime must carry a time zone (use Z for UTC)")
    return parsed.astimezone(dt.UTC)


SCALARS: dict[object, ScalarDefinition] = {
    decimal.Decimal: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number, as a string with two decimals ("12.50").',
        serialize=serialize_decimal,
        parse_value=parse_decimal,
    ),
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description="An ISO-8601 date and time in UTC.",
        serialize=serialize_datetime,
        parse_value=parse_datetime,
    ),
}
