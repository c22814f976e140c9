"""Strict readers of the JSON data a snapshot holds: a shape that is not exactly right raises ValueError.

A snapshot is derived data that a reader may always replace by replaying the stream, so a reader
refuses anything odd (a wrong type, an unknown key, a quantity out of range) instead of guessing.
This is a shared kernel of plain value checks: it knows no aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fields(data: object, *names: str) -> Mapping[str, Any]:
    """Return `data` as a mapping with exactly the keys `names`."""
    if not isinstance(data, Mapping) or set(data) != set(names):
        raise ValueError(f"expected an object with exactly {', '.join(names)}")
    return data


def text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, not {type(value).__name__}")
    return value


def optional_text(value: object) -> str | None:
    return None if value is None else text(value)


def whole(value: object, low: int, high: int) -> int:
    """Return `value` as an int in low..high (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"expected a whole number in {low}..{high}, not {value!r}")
    return value


def quantities(value: object, high: int) -> dict[str, int]:
    """Return a list of [id, quantity] pairs as a dict in the same order; ids unique, quantities 1..high."""
    if not isinstance(value, list):
        raise ValueError("expected a list of [id, quantity] pairs")
    found: dict[str, int] = {}
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2 or text(pair[0]) in found:
            raise ValueError(f"expected a new [id, quantity] pair, not {pair!r}")
        found[pair[0]] = whole(pair[1], 1, high)
    return found


def texts(value: object, length: int | None = None) -> list[str]:
    """Return a list of strings (of exactly `length` of them, when given)."""
    if not isinstance(value, list) or length not in (None, len(value)):
        raise ValueError(f"expected a list of {length or 'any number of'} strings")
    return [text(item) for item in value]
