"""Responses are encoded as the same JSON the standard library writes, whatever they hold."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.schema.output import cap_response, encode

VALUES: dict[str, Any] = {
    "a page": {"data": {"books": {"edges": [{"node": {"id": "1", "price": "12.50", "version": 3}}] * 20}}},
    "text beyond ASCII": {"data": {"name": "Ōe Kenzaburō — 個人的な体験 🐍"}},
    "an integer beyond 64 bits": {"data": {"event": {"n": 2**80}}},
    "a lone surrogate": {"errors": [{"message": "Unknown field 'x\ud800'."}]},
    "floats, nulls, bools and nesting": {"data": {"a": [1.5, None, True, {"b": [[]]}], "c": -0.0}},
}


@pytest.mark.parametrize("value", VALUES)
def test_encode_writes_what_the_standard_library_reads_back_the_same(value: str) -> None:
    encoded = encode(VALUES[value])
    assert json.loads(encoded) == json.loads(json.dumps(VALUES[value]))


def test_a_response_past_the_cap_is_replaced_by_an_error() -> None:
    value = VALUES["a page"]
    encoded = encode(value)
    assert cap_response(encoded, value, len(encoded)) == encoded
    replaced = json.loads(cap_response(encoded, value, len(encoded) - 1))
    assert replaced["data"] is None and replaced["errors"][0]["extensions"]["code"] == "RESPONSE_TOO_LARGE"
