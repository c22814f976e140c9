"""Custom scalars: Decimal money as a two-decimal string, DateTime as ISO-8601 UTC."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import strawberry
from graphql import GraphQLError, IntValueNode, StringValueNode, ValueNode, value_from_ast_untyped
from strawberry.types.scalar import ScalarDefinition

from app.domain.errors import ValidationError
from app.domain.fields import short

# Digits with an optional point: no exponent (1e999999999 would reach PostgreSQL), no NaN or
# Infinity, no "_", spaces or non-ASCII digits that Decimal() would also take.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
MAX_DECIMAL_LENGTH = 40
_DECIMAL_HINT = 'send digits with an optional point, such as "12.50"'
MAX_DATETIME_LENGTH = 64


def serialize_decimal(value: decimal.Decimal) -> str:
    return f"{value:.2f}"


def bad_value(message: str, node: ValueNode | None = None) -> GraphQLError:
    """A refused scalar value: a typed error (no trace logged), where graphql-core names the variable."""
    return GraphQLError(message, node, extensions={"code": ValidationError.code})


def parse_decimal(value: Any) -> decimal.Decimal:
    """Parse a JSON string or integer exactly; floats are refused because they round."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise bad_value(f'Decimal must be a string such as "12.50", not {type(value).__name__}.')
    # An int of thousands of digits cannot even become a string; any beyond 40 is refused anyway.
    if isinstance(value, int) and abs(value) >= 10**MAX_DECIMAL_LENGTH:
        raise bad_value(f"Decimal must have at most {MAX_DECIMAL_LENGTH} characters.")
    text = str(value)
    if len(text) > MAX_DECIMAL_LENGTH:
        raise bad_value(f"Decimal must have at most {MAX_DECIMAL_LENGTH} characters.")
    if _DECIMAL.fullmatch(text) is None:
        raise bad_value(f"Not a Decimal: {short(text)!r}; {_DECIMAL_HINT}.")
    return decimal.Decimal(text)


def parse_decimal_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> decimal.Decimal:
    """Parse a Decimal written in the document; the error points at the literal."""
    try:
        if isinstance(node, StringValueNode | IntValueNode):
            return parse_decimal(node.value)
        return parse_decimal(value_from_ast_untyped(node, variables))
    except GraphQLError as error:
        raise bad_value(f"Expected value of type 'Decimal': {error.message}", node) from None


def serialize_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: Any) -> dt.datetime:
    """Parse an ISO-8601 string with a time zone; refusals are typed errors, like Decimal's."""
    if not isinstance(value, str) or len(value) > MAX_DATETIME_LENGTH:
        raise bad_value("DateTime must be an ISO-8601 string.")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise bad_value(f"Not an ISO-8601 date and time: {short(value)!r}.") from None
    if parsed.tzinfo is None:
        raise bad_value("DateTime must carry a time zone (use Z for UTC).")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # year 1 east of UTC, or year 9999 west of it
        raise bad_value("DateTime is out of range once moved to UTC.") from None


SCALARS: dict[object, ScalarDefinition] = {
    decimal.Decimal: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number, as a string with two decimals ("12.50").',
        serialize=serialize_decimal,
        parse_value=parse_decimal,
        parse_literal=parse_decimal_literal,
    ),
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description="An ISO-8601 date and time in UTC.",
        serialize=serialize_datetime,
        parse_value=parse_datetime,
    ),
}
