"""Parsing what clients send back: positions, cursor keys, decimals, searches; only the canonical forms."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from graphql import GraphQLError

from app.domain.errors import ValidationError
from app.eventstore.position import MAX_PART, InvalidPosition, Position
from app.ids import new_id
from app.queries.paging import decode_cursor, encode_cursor, number_key, text_key, timestamp_key, whole_key
from app.queries.search import MAX_SEARCH, clean_search
from app.schema.scalars import parse_datetime, parse_decimal


@pytest.mark.parametrize("position", [Position(0, 1), Position(2**40, 17), Position(MAX_PART, MAX_PART)])
def test_a_printed_position_parses_back(position: Position) -> None:
    assert Position.parse(str(position)) == position


@pytest.mark.parametrize(
    "text",
    [
        "0x" + "0" * 29 + "1",
        "+" + "0" * 31,
        "0" * 15 + "_" + "0" * 16,
        " " + "0" * 31,
        "0" * 31 + "\u0661",
        "0" * 31 + "A",
        "8" + "0" * 31,
        "f" * 32,
        "0" * 33,
        "",
    ],
)
def test_anything_but_the_printed_form_is_not_a_position(text: str) -> None:
    with pytest.raises(InvalidPosition):
        Position.parse(text)


def test_a_cursor_round_trips() -> None:
    row_id = new_id()
    cursor = encode_cursor("author:name", "Le Guin", row_id)

    assert decode_cursor(cursor, "author:name", text_key) == ("Le Guin", row_id)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("[" * 50_000 + "]" * 50_000),
        "A" * 10_000,
        _cursor(json.dumps(["x", "\x00", new_id()])),
        _cursor(f'["x", NaN, "{new_id()}"]'),
    ],
)
def test_absurd_cursors_are_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_cursor(cursor, "x", text_key)
    assert caught.value.fields[0].field == "after"


@pytest.mark.parametrize(
    ("parse", "key"),
    [
        (number_key, 10**400),
        (number_key, float("inf")),
        (number_key, True),
        (whole_key, 2**31),
        (whole_key, 1.0),
        (text_key, "\ud800"),
        (text_key, "x" * 5000),
        (timestamp_key, "0001-01-01T00:00:00+05:00"),
        (timestamp_key, "9999-12-31T23:59:59-05:00"),
        (timestamp_key, "2024-01-01T00:00:00"),
    ],
)
def test_key_parsers_refuse_what_postgresql_cannot_compare(parse: object, key: object) -> None:
    assert callable(parse)
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        parse(key)


@pytest.mark.parametrize("value", ["12.50", "0", "-3", 12, "1" + "0" * 30])
def test_plain_decimals_parse_exactly(value: str | int) -> None:
    assert parse_decimal(value) == Decimal(str(value))


@pytest.mark.parametrize(
    "value", ["1e999999999", "1e-999999", "NaN", "Infinity", "1_000", "\u0661", " 12", "", "1.", 10**50, 1.5]
)
def test_other_decimals_are_a_typed_error(value: object) -> None:
    with pytest.raises(GraphQLError) as caught:
        parse_decimal(value)
    assert caught.value.extensions == {"code": "VALIDATION_FAILED"}


def test_search_is_trimmed_bounded_and_storable() -> None:
    assert clean_search("  sea  ") == "sea"
    assert clean_search("   ") is None
    for bad in ("a\x00b", "\udfff", "x" * (MAX_SEARCH + 1)):
        with pytest.raises(ValidationError):
            clean_search(bad)


@pytest.mark.parametrize(
    "value", ["yesterday", "2024-01-01T00:00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", 5]
)
def test_bad_datetimes_are_a_typed_error(value: object) -> None:
    with pytest.raises(GraphQLError) as caught:
        parse_datetime(value)
    assert caught.value.extensions == {"code": "VALIDATION_FAILED"}


def test_a_datetime_is_moved_to_utc() -> None:
    assert parse_datetime("2024-01-01T05:00:00+05:00").isoformat() == "2024-01-01T00:00:00+00:00"
