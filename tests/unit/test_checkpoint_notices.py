"""Parsing the payload of a checkpoint notice."""

from __future__ import annotations

import pytest

from app.eventstore import Position
from app.live.checkpoints import parse_notice


def test_a_notice_names_a_projection_and_its_checkpoint() -> None:
    assert parse_notice("catalog 812 40") == ("catalog", Position(812, 40))


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "catalog",
        "catalog 1",
        "catalog 1 2 3",
        "catalog -1 2",
        "catalog 1 x",
        "catalog \u0661 2",  # a digit, but not an ASCII one
        "c" * 64 + " 1 2",
    ],
)
def test_anything_else_is_not_a_notice(payload: str) -> None:
    assert parse_notice(payload) is None


def test_a_huge_number_is_not_a_notice() -> None:
    assert parse_notice("catalog 1 " + "9" * 5000) is None
